//! Published IOMMU listings (Arch-wiki script output, `lspci -nn`, dmesg,
//! `find /sys/kernel/iommu_groups`, ...) turned into a [`Host`](super::Host).
//!
//! This is how the real machines in `samples/hosts/` become the project's
//! own inputs. (Filled in by the samples work; see ARCHITECTURE.md.)
