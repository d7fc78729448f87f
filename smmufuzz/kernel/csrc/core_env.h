/* core_env.h: what drivers/iommu/iommu.c's map/unmap path (extracted into iommu_core_gen.c) needs
 * beyond kernel_env.h: trace points as no-ops, GFP flag tests, check_add_overflow, and a flat
 * scatterlist (a C array of (phys, length) entries) for iommu_map_sg(). */
#ifndef SMMUFUZZ_CORE_ENV_H
#define SMMUFUZZ_CORE_ENV_H

#define trace_map(iova, paddr, size) ((void)(iova), (void)(paddr), (void)(size))
#define trace_unmap(iova, size, unmapped) ((void)(iova), (void)(size), (void)(unmapped))
#define might_sleep_if(c) ((void)(c))
#define __GFP_DMA 0x1000u
#define __GFP_DMA32 0x2000u
#define __GFP_COMP 0x4000u
#define __GFP_DIRECT_RECLAIM 0x8000u
static inline bool gfpflags_allow_blocking(gfp_t gfp) { return gfp & (GFP_KERNEL | __GFP_DIRECT_RECLAIM); }
#ifndef check_add_overflow
#define check_add_overflow(a, b, d) __builtin_add_overflow(a, b, d)
#endif

/* One entry of the host's list: sg_next() is the next array element (no chaining). */
struct scatterlist {
	phys_addr_t phys;
	unsigned int length;
	dma_addr_t dma_address;
};
static inline phys_addr_t sg_phys(struct scatterlist *sg) { return sg->phys; }
static inline struct scatterlist *sg_next(struct scatterlist *sg) { return sg + 1; }
static inline bool sg_dma_is_bus_address(struct scatterlist *sg) { (void)sg; return false; }
#define sg_dma_len(sg) ((sg)->length)
#define for_each_sg(sglist, sg, nr, __i) \
	for (__i = 0, sg = (sglist); __i < (nr); __i++, sg = sg_next(sg))
#endif
