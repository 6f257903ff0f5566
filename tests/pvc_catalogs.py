"""Inline catalogs whose apps' PVCs are copied by kopiur, by VolSync, or by both.

Each is in a zone with DST of its own, so that the schedules the engines are given differ
from the reference catalog's: kopiur reads the catalog's zone (``timezone``), VolSync the
controllers' (``settings.controller_timezone``, UTC here).
"""

from __future__ import annotations

import textwrap

from conftest import RUNBOOKS_LINE

__all__ = ["KOPIUR_ONLY", "MIXED_ENGINES", "VOLSYNC_ONLY", "pvc_catalog"]


def pvc_catalog(zone: str, settings: str, services: str) -> str:
    """A catalog in ``zone`` with an R2 store; ``settings`` and ``services`` are YAML text
    indented for their places (two spaces below ``settings:`` and ``services:``)."""
    head = textwrap.dedent(
        f"""\
        version: homeops/v1
        settings:
          timezone: {zone}
          nfs: {{server: nas.lan, backup_root: /mnt/tank}}
          pushgateway: http://pushgateway.monitoring.svc:9091
          object_stores:
            r2:
              provider: r2
              endpoint: https://acct.r2.cloudflarestorage.com
              region: auto
              bucket: homelab
        """
    )
    return (
        head
        + RUNBOOKS_LINE
        + textwrap.indent(textwrap.dedent(settings), "  ")
        + ("services:\n" + textwrap.indent(textwrap.dedent(services), "  "))
    )


#: Every app on kopiur (the catalog-wide default), in New York: one kept out of the offsite
#: copies, one on a CSI class cloned with its own counts and a drill that wants 3 files, one
#: undrilled on a class without CSI snapshots (Direct).
KOPIUR_ONLY = pvc_catalog(
    "America/New_York",
    """\
    pvc_engine: kopiur
    volsync:
      classes:
        local-hostpath: {storage_class: openebs-hostpath}
        iscsi: {storage_class: democratic-iscsi, snapshot_class: democratic-iscsi-snap}
    kopiur:
      repository: nas
      r2_repository: offsite
      quick_verify_cadence: "0 4 * * *"
      on_missing_snapshot: Fail
    """,
    """\
    - name: cache
      namespace: tools
      storage: local-hostpath
      churn: high
      engine: files
      offsite: {excluded: Regenerable cache}
      pvc: {capacity: 1Gi}
    - name: notes
      namespace: notes
      storage: iscsi
      churn: medium
      engine: files
      criticality: critical
      drill: {cadence: weekly, min_files: 3}
      pvc:
        capacity: 3Gi
        claim: notes-data
        copy_method: Clone
        uid: 568
        gid: 568
        retain: {hourly: 6, daily: 10, yearly: 2}
        r2_retain: {monthly: 6}
    - name: wiki
      namespace: tools
      storage: local-hostpath
      churn: low
      engine: files
      drill: false
      pvc: {capacity: 2Gi}
    """,
)

#: Every app on VolSync, in Sydney (southern DST).
VOLSYNC_ONLY = pvc_catalog(
    "Australia/Sydney",
    """\
    volsync:
      classes:
        local-hostpath: {storage_class: openebs-hostpath}
    """,
    """\
    - name: cache
      namespace: tools
      storage: local-hostpath
      churn: high
      engine: files
      offsite: {excluded: Regenerable cache}
      volsync: {capacity: 1Gi}
    - name: wiki
      namespace: tools
      storage: local-hostpath
      churn: low
      engine: files
      pvc: {capacity: 2Gi}
    """,
)

#: Both engines side by side, in Berlin: VolSync by default, kopiur by block and by
#: ``pvc.engine``.
MIXED_ENGINES = pvc_catalog(
    "Europe/Berlin",
    "",
    """\
    - name: grafana
      namespace: monitoring
      storage: local-hostpath
      churn: medium
      engine: files
      volsync: {capacity: 1Gi}
    - name: paperless
      namespace: docs
      storage: local-hostpath
      churn: medium
      engine: files
      criticality: high
      kopiur: {capacity: 4Gi, cache_capacity: 1Gi}
    - name: jellyfin
      namespace: media
      storage: local-hostpath
      churn: low
      engine: files
      offsite: {excluded: Rebuildable metadata}
      pvc: {capacity: 2Gi, engine: kopiur}
    """,
)
