"""Where the generated alerts go: an Alertmanager route tree from ``settings.alerts.routing``.

Two forms of the same tree, for the two ways a homelab configures Alertmanager:

* ``alertmanager/alertmanager.yml``: ``route`` and ``receivers`` in Alertmanager's own file
  format (``amtool check-config`` reads it as is). The receivers carry only their names:
  merge your integrations (webhooks, keys: secrets, never in the catalog) into them.
* ``kubernetes/monitoring/alertmanagerconfig.yaml``: a prometheus-operator
  ``AlertmanagerConfig``. The operator adds a matcher on the object's own namespace to its
  top route unless the Alertmanager resource sets ``alertmanagerConfigMatcherStrategy:
  {type: None}``; the generated alerts carry the services' namespaces, so without that
  setting this object would route none of them but the alerts namespace's own.

Routes are tried in order and the first whose matchers all equal the alert's labels wins
(``also_later_routes`` lets the next ones match too); an alert no route matches goes to the
default receiver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from homeops_gen.catalog.model import Catalog
from homeops_gen.catalog.spec import AlertRoutingSpec
from homeops_gen.plan import OutputFile, YamlDocuments
from homeops_gen.promql import quoted
from homeops_gen.registry import register_generator

__all__ = ["alertmanager_config", "alertmanager_yml", "generate_alert_routing"]

CONFIG_PATH = "alertmanager/alertmanager.yml"
OBJECT_PATH = "kubernetes/monitoring/alertmanagerconfig.yaml"


def _receivers(routing: AlertRoutingSpec) -> list[str]:
    return list(dict.fromkeys([routing.receiver, *(r.receiver for r in routing.routes)]))


def _tree(
    routing: AlertRoutingSpec,
    group_by: str,
    matchers: Callable[[Mapping[str, str]], list[Any]],
) -> dict[str, Any]:
    """The route tree, its matchers written by ``matchers`` (the two formats differ there
    and in the spelling of ``group_by``)."""
    routes = []
    for route in routing.routes:
        child: dict[str, Any] = {"receiver": route.receiver, "matchers": matchers(route.matchers)}
        if route.also_later_routes:
            child["continue"] = True
        routes.append(child)
    tree: dict[str, Any] = {"receiver": routing.receiver, group_by: list(routing.group_by)}
    if routes:
        tree["routes"] = routes
    return tree


def alertmanager_yml(routing: AlertRoutingSpec) -> dict[str, Any]:
    """Alertmanager's own format: matchers as ``name="value"`` strings."""
    tree = _tree(routing, "group_by", lambda m: [f"{k}={quoted(v)}" for k, v in m.items()])
    return {"route": tree, "receivers": [{"name": name} for name in _receivers(routing)]}


def alertmanager_config(catalog: Catalog, routing: AlertRoutingSpec) -> dict[str, Any]:
    # Equality is the default without matchType (whose "=" YAML 1.1 readers such as PyYAML
    # and ruamel take for their "value" tag when it is written plain).
    tree = _tree(routing, "groupBy", lambda m: [{"name": k, "value": v} for k, v in m.items()])
    metadata: dict[str, Any] = {
        "name": "homeops-backup-routing",
        "namespace": catalog.settings.alerts_namespace,
    }
    if catalog.settings.alert_rule_labels:
        metadata["labels"] = dict(catalog.settings.alert_rule_labels)
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": metadata,
        "spec": {"route": tree, "receivers": [{"name": n} for n in _receivers(routing)]},
    }


@register_generator(
    "alert-routing", description="out/alertmanager and an AlertmanagerConfig: the route tree"
)
def generate_alert_routing(catalog: Catalog) -> Iterator[OutputFile]:
    routing = catalog.settings.alert_routing
    if routing is None:
        return
    yield OutputFile(
        CONFIG_PATH,
        YamlDocuments(
            (alertmanager_yml(routing),),
            comment="The route tree of the generated alerts (settings.alerts.routing). The\n"
            "receivers carry only their names: merge your integrations (webhook_configs,\n"
            "email_configs, ...) into them, or this tree into your alertmanager.yml.",
        ),
    )
    yield OutputFile(
        OBJECT_PATH,
        YamlDocuments(
            (alertmanager_config(catalog, routing),),
            comment="The same route tree for prometheus-operator. The operator limits an\n"
            "AlertmanagerConfig to alerts whose namespace label is its own unless the\n"
            "Alertmanager resource sets alertmanagerConfigMatcherStrategy: {type: None};\n"
            "the backup alerts carry their services' namespaces, so set it. Add the\n"
            "integrations to the receivers (or reference Secrets from them).",
        ),
    )
