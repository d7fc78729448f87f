"""Substreams: the context descriptor an SSID (PASID) selects through an STE's CD table (IHI 0070 §5.4, §3.3.2)."""

from dataclasses import replace

from .ste import Cd, Ste


def ssid_allowed(ste: Ste, ssid: int) -> bool:
    """Does the STE give SSID a CD: stage 1 with a CD table of 2^S1CDMax entries (IHI 0070 §5.2 S1CDMax)?"""
    return ste.config == "s1" and ste.s1cdmax > 0 and 0 < ssid < 1 << ste.s1cdmax


def substream_config(ste: Ste, cd: Cd) -> Ste:
    """The translation context of a substream: the STE's fields (VMID, EATS, StreamWorld) with the CD's ASID and
    stage-1 table, so TLB entries are tagged by the CD's ASID as the stream's own are (§5.4)."""
    return replace(ste, asid=cd.asid, ttb=cd.ttb, geo=cd.geo)
