"""The iSCSI initiator hardening of the nodes (``out/iscsi/``), when a service is on iSCSI.

The backup seed relaxes open-iscsi's timeouts on every Kubernetes node (a session survives a
network blip of minutes instead of failing the writes of the databases on the zvols) and
adds CRC32C digests; ``settings.iscsi`` holds the values. Generated:

* ``iscsid.conf.fragment``: the ``key = value`` lines, for a node image or a config tool;
* ``apply-iscsi-hardening.sh``: sets them in ``/etc/iscsi/iscsid.conf`` (commented-out
  defaults replaced, missing keys appended) and in every existing node record;
* ``check-iscsi-hardening.sh``: reports each difference on a node, exit 1 on drift;
* ``cloud-init.yaml``: user-data that installs the apply script and runs it at first boot.
"""

from __future__ import annotations

from collections.abc import Iterator

from homeops_gen.catalog.model import Catalog
from homeops_gen.catalog.spec import IscsiSpec
from homeops_gen.plan import OutputFile, TemplateRender, Text
from homeops_gen.registry import register_generator

__all__ = ["APPLY_PATH", "generate_iscsi_hardening", "iscsi_settings"]

#: Where the cloud-init user-data installs the apply script on a node.
APPLY_PATH = "/usr/local/sbin/apply-iscsi-hardening"


def iscsi_settings(spec: IscsiSpec) -> list[tuple[str, str]]:
    """open-iscsi's keys and the hardened values, in iscsid.conf's order."""
    return [
        ("node.session.timeo.replacement_timeout", str(spec.replacement_timeout)),
        ("node.conn[0].timeo.noop_out_interval", str(spec.noop_out_interval)),
        ("node.conn[0].timeo.noop_out_timeout", str(spec.noop_out_timeout)),
        ("node.conn[0].iscsi.HeaderDigest", spec.header_digest),
        ("node.conn[0].iscsi.DataDigest", spec.data_digest),
    ]


def _cloud_init(script: bytes) -> Text:
    from homeops_gen.render import to_yaml

    body = to_yaml(
        [
            {
                "write_files": [
                    {
                        "path": APPLY_PATH,
                        "owner": "root:root",
                        "permissions": "0755",
                        "content": script.decode("utf-8"),
                    }
                ],
                "runcmd": [[APPLY_PATH]],
            }
        ]
    )
    return Text(
        "#cloud-config\n# The iSCSI hardening of settings.iscsi, applied at first boot.\n" + body
    )


@register_generator("iscsi", description="out/iscsi: the nodes' iSCSI initiator hardening")
def generate_iscsi_hardening(catalog: Catalog) -> Iterator[OutputFile]:
    if not any(s.storage == "iscsi" for s in catalog.services):
        return
    from homeops_gen.render import render_file

    settings = iscsi_settings(catalog.settings.iscsi)
    context = {"settings": settings}
    lines = "".join(f"{key} = {value}\n" for key, value in settings)
    yield OutputFile(
        "iscsi/iscsid.conf.fragment",
        Text(
            "# open-iscsi initiator hardening (settings.iscsi): merge into\n"
            "# /etc/iscsi/iscsid.conf, or run apply-iscsi-hardening.sh.\n" + lines
        ),
    )
    apply = OutputFile(
        "iscsi/apply-iscsi-hardening.sh",
        TemplateRender("iscsi/apply-iscsi-hardening.sh.j2", context),
    )
    yield apply
    yield OutputFile(
        "iscsi/check-iscsi-hardening.sh",
        TemplateRender("iscsi/check-iscsi-hardening.sh.j2", context),
    )
    yield OutputFile("iscsi/cloud-init.yaml", _cloud_init(render_file(apply)))
