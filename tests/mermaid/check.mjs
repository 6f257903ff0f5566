// Mermaid's own reading of diagrams, all of them in one process (tests/test_diagrams.py).
//
//   node check.mjs            parse: mermaid.parse() under jsdom, no browser
//   node check.mjs --render   draw: mermaid.render() in Chromium (CHROMIUM, else
//                             /usr/bin/chromium), headless, through puppeteer-core
//
// stdin: a JSON array of diagram texts. stdout: {mermaid: its version, limits, answers}, one
// answer per diagram, in order.
//
// parse: {ok: false, error} when mermaid.parse() rejects the text, else {ok: true,
// diagramType, config, title, vertices, edges, subgraphs, classes} as Mermaid's flowchart
// database holds them after the parse. Labels are as Mermaid keeps them: its entity codes
// (`#quot;`, `#35;`) still as its internal markers, see decode() in tests/test_diagrams.py.
// limits: the text size and edge count past which Mermaid draws an error instead.
//
// render: {ok: false, error} or {ok: true, nodes: {vertex id: {lines, tags}}}: each node's
// label as the page shows it (its text, one entry per line) and the elements inside the
// label. Mermaid sanitizes labels with DOMPurify, which needs a DOM: jsdom provides one for
// parsing; drawing needs a browser's layout. No network either way: the page is blank and
// loads Mermaid from node_modules.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const version = JSON.parse(readFileSync(here("./node_modules/mermaid/package.json"), "utf8")).version;
const texts = JSON.parse(readFileSync(0, "utf8"));

function vertices(db) {
  const found = db.getVertices();
  const entries = found instanceof Map ? [...found.entries()] : Object.entries(found);
  return Object.fromEntries(
    entries.map(([id, v]) => [
      id,
      { text: v.text ?? "", type: v.type ?? null, classes: v.classes ?? [], link: v.link ?? null },
    ]),
  );
}

async function parseAll() {
  const { JSDOM } = await import("jsdom");
  const dom = new JSDOM("<!DOCTYPE html><html><body></body></html>");
  globalThis.window = dom.window;
  globalThis.document = dom.window.document;
  const { default: mermaid } = await import("mermaid");
  mermaid.initialize({ startOnLoad: false });
  const defaults = mermaid.mermaidAPI.getConfig();
  const answers = [];
  for (const text of texts) {
    let parsed;
    try {
      parsed = await mermaid.parse(text);
    } catch (error) {
      answers.push({ ok: false, error: String(error?.message ?? error) });
      continue;
    }
    const answer = { ok: true, diagramType: parsed.diagramType, config: parsed.config ?? {} };
    if (String(parsed.diagramType).startsWith("flowchart")) {
      const db = (await mermaid.mermaidAPI.getDiagramFromText(text)).db;
      const classes = db.getClasses();
      Object.assign(answer, {
        title: db.getDiagramTitle?.() ?? "",
        vertices: vertices(db),
        edges: db.getEdges().map((e) => ({ start: e.start, end: e.end, text: e.text ?? "" })),
        subgraphs: db.getSubGraphs().map((s) => ({ id: s.id, title: s.title, nodes: s.nodes })),
        classes: Object.keys(classes instanceof Map ? Object.fromEntries(classes) : classes),
      });
    }
    answers.push(answer);
  }
  const limits = { maxTextSize: defaults.maxTextSize, maxEdges: defaults.maxEdges };
  return { limits, answers };
}

async function renderAll() {
  const { default: puppeteer } = await import("puppeteer-core");
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--headless",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  try {
    const page = await browser.newPage();
    await page.setContent("<!DOCTYPE html><html><body></body></html>");
    await page.addScriptTag({ path: here("./node_modules/mermaid/dist/mermaid.min.js") });
    const answers = await page.evaluate(async (texts) => {
      const mermaid = globalThis.mermaid;
      mermaid.initialize({ startOnLoad: false });
      // A label's text as shown, a line per <br>.
      const lines = (label) => {
        const found = [""];
        const walk = (node) => {
          for (const child of node.childNodes) {
            if (child.nodeType === Node.TEXT_NODE) found[found.length - 1] += child.data;
            else if (child.nodeName.toLowerCase() === "br") found.push("");
            else walk(child);
          }
        };
        walk(label);
        return found;
      };
      const answers = [];
      for (const [index, text] of texts.entries()) {
        const id = `chart${index}`;
        try {
          const { svg } = await mermaid.render(id, text);
          const holder = document.createElement("div");
          holder.innerHTML = svg;
          document.body.appendChild(holder);
          const nodes = {};
          for (const group of holder.querySelectorAll("g.node")) {
            const vertex = new RegExp(`^${id}-flowchart-(.+)-[0-9]+$`).exec(group.id);
            const label = group.querySelector(".nodeLabel");
            if (!vertex || !label) continue;
            const tags = [...label.querySelectorAll("*")].map((e) => e.nodeName.toLowerCase());
            nodes[vertex[1]] = { lines: lines(label), tags };
          }
          holder.remove();
          answers.push({ ok: true, nodes });
        } catch (error) {
          answers.push({ ok: false, error: String(error?.message ?? error) });
        }
      }
      return answers;
    }, texts);
    return { answers };
  } finally {
    await browser.close();
  }
}

const result = process.argv.includes("--render") ? await renderAll() : await parseAll();
process.stdout.write(JSON.stringify({ mermaid: version, ...result }));
