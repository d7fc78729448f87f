"""A test-only variant with a real bug that the registry marks correct (`--load tests.mislabelled_variant`):
its findings must be labelled UNEXPECTED. Not imported by the other tests, so that the properties of the
variants marked correct still hold there."""

from smmufuzz.variants.registry import TARGETS, register
from tests.broken_variants import NoIotlbSync

register("test-marked-correct", NoIotlbSync, False, "test-only", "arm_smmu_iotlb_sync does nothing, marked correct")
TARGETS["test-marked-correct+smmuv3"] = ["test-marked-correct", "smmuv3"]
