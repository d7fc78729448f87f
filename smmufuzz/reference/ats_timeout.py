"""An ATC invalidation racing an ATS disable: the endpoint may ignore it, and the CMD_SYNC that waits for it
fails with CERROR_ATC_INV_SYNC (IHI 0070 §4.1.4 CMD_SYNC, §7.1 command errors; PCIe ATS Enable cleared while
an Invalidate Request is outstanding). Seed 002: "ATC invalidations must be completed before the driver
disables ATS. Or the device is permitted to ignore any racing invalidation that would cause an SMMU timeout."

An endpoint whose ATS stays disabled answers (arm_smmu_enable_ats() flushes the ATC before pci_enable_ats());
only an invalidation published before the disable and not yet completed by a CMD_SYNC is at risk.
"""

from . import cmdq as C


def outstanding_atc_inv(pending: dict, sid: int) -> set[int]:
    """Publication seqs of the ATC_INVs to `sid` not yet completed, in every command queue."""
    return {pub for queue in pending.values() for pub, cmd, _end in queue
            if cmd.op == C.CMD_ATC_INV and cmd.sid == sid}


def sync_timeout(cmd) -> str:
    """The command error a CMD_SYNC reports for an ATC invalidation the endpoint never completed."""
    return (f"CERROR_ATC_INV_SYNC: {cmd.text()}: the endpoint's ATS was disabled while the invalidation was "
            f"outstanding; it ignored it and the CMD_SYNC timed out (arm_smmu_cmdq_poll_until_sync: "
            f"ARM_SMMU_POLL_TIMEOUT_US)")
