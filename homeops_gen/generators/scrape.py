"""The Pushgateway scrape the backup alerts depend on (``kubernetes/monitoring/``).

The backup jobs push to groups named ``job/<job>/service/<service>``, and the rules match that
``job`` label. Prometheus keeps it only when it scrapes the Pushgateway with
``honor_labels: true`` (otherwise the target's own ``job`` wins and the pushed one becomes
``exported_job``), so the ServiceMonitor is generated with ``honorLabels: true``, labelled
like the PrometheusRules so that the same Prometheus selects it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from homeops_gen.catalog.model import Catalog
from homeops_gen.plan import OutputFile, YamlDocuments
from homeops_gen.registry import register_generator

__all__ = ["generate_pushgateway_scrape", "service_monitor"]

PATH = "kubernetes/monitoring/pushgateway-servicemonitor.yaml"


def service_monitor(catalog: Catalog) -> dict[str, Any] | None:
    """The ServiceMonitor, or ``None`` when the catalog says the scrape exists or nothing
    pushes (no application-level backup, offsite sync or LVM snapshots)."""
    scrape = catalog.settings.pushgateway_scrape
    settings = catalog.settings
    pushed = any(s.uses("dump") for s in catalog.services)
    pushed = pushed or settings.offsite_target is not None or settings.lvm_snapshots is not None
    if scrape is None or not pushed:
        return None
    metadata: dict[str, Any] = {"name": "homeops-pushgateway", "namespace": scrape.namespace}
    if catalog.settings.alert_rule_labels:
        metadata["labels"] = dict(catalog.settings.alert_rule_labels)
    endpoint = {"port": scrape.port, "path": "/metrics", "honorLabels": True}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": dict(scrape.service_labels)},
            "namespaceSelector": {"matchNames": [scrape.namespace]},
            "endpoints": [endpoint],
        },
    }


@register_generator("pushgateway-scrape", description=f"out/{PATH}: honorLabels scrape")
def generate_pushgateway_scrape(catalog: Catalog) -> Iterator[OutputFile]:
    monitor = service_monitor(catalog)
    if monitor is not None:
        yield OutputFile(PATH, YamlDocuments((monitor,)))
