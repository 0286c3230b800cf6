//! Where partitions go: a pure function from "what sizes are wanted" (and
//! optionally the disk's total size) to byte extents, aligned to 1 MiB.

use thiserror::Error;

use super::{ALIGN, SECTOR};

/// Sectors the backup GPT takes at the end of the disk (header + 128 entries).
const GPT_BACKUP_SECTORS: u64 = 33;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Gpt,
    Mbr,
}

impl TableKind {
    /// Bytes the table reserves at the end of the disk.
    fn tail(self) -> u64 {
        match self {
            TableKind::Gpt => GPT_BACKUP_SECTORS * SECTOR,
            TableKind::Mbr => 0,
        }
    }
}

/// How big one partition should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// This many bytes (rounded up to whole sectors).
    Exactly(u64),
    /// `default` bytes when the disk size is free; otherwise whatever the other
    /// partitions leave, but never less than `min`. At most one per layout.
    Grow { min: u64, default: u64 },
}

/// A byte range of the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
    pub fn first_lba(&self) -> u64 {
        self.start / SECTOR
    }
    pub fn last_lba(&self) -> u64 {
        self.end() / SECTOR - 1
    }
    pub fn sectors(&self) -> u64 {
        self.len / SECTOR
    }
}

/// A planned disk: its size and one extent per requested partition, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub table: TableKind,
    pub disk_size: u64,
    pub partitions: Vec<Extent>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error(
        "the disk is too small: these partitions need at least {needed} bytes, the size given is {given} bytes"
    )]
    TooSmall { needed: u64, given: u64 },
    #[error("the disk size ({0} bytes) is not a multiple of {SECTOR}-byte sectors")]
    NotSectorMultiple(u64),
    #[error("an MBR partition table cannot describe a disk of {0} bytes (2 TiB at most)")]
    TooLargeForMbr(u64),
    #[error("at most one partition may grow to fill the disk")]
    SeveralGrow,
    #[error("no partitions requested")]
    Empty,
}

fn align_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

fn align_down(n: u64, to: u64) -> u64 {
    n / to * to
}

/// Lays partitions out in order, each starting on a 1 MiB boundary, the first
/// at 1 MiB. Without `total`, a growing partition takes its default size and
/// the disk ends on a 1 MiB boundary after the last partition (plus 1 MiB for
/// the backup GPT). With `total`, the growing partition takes whatever space
/// the others leave, in whole MiB.
pub fn plan(table: TableKind, wants: &[Want], total: Option<u64>) -> Result<Layout, LayoutError> {
    if wants.is_empty() {
        return Err(LayoutError::Empty);
    }
    if wants
        .iter()
        .filter(|w| matches!(w, Want::Grow { .. }))
        .count()
        > 1
    {
        return Err(LayoutError::SeveralGrow);
    }
    if let Some(total) = total
        && !total.is_multiple_of(SECTOR)
    {
        return Err(LayoutError::NotSectorMultiple(total));
    }

    let place = |grow: &dyn Fn(u64, u64) -> u64| {
        let mut pos = ALIGN;
        wants
            .iter()
            .map(|want| {
                let len = match *want {
                    Want::Exactly(n) => align_up(n, SECTOR),
                    Want::Grow { min, default } => {
                        grow(align_up(min, ALIGN), align_up(default, ALIGN))
                    }
                };
                let extent = Extent {
                    start: align_up(pos, ALIGN),
                    len,
                };
                pos = extent.end();
                extent
            })
            .collect::<Vec<_>>()
    };
    let end_of = |parts: &[Extent]| parts.last().map_or(ALIGN, Extent::end);

    let (partitions, disk_size) = match total {
        None => {
            let parts = place(&|min, default| default.max(min));
            let end = end_of(&parts);
            let tail = match table {
                TableKind::Gpt => ALIGN,
                TableKind::Mbr => 0,
            };
            (parts, align_up(end, ALIGN) + tail)
        }
        Some(total) => {
            let smallest = place(&|min, _| min);
            let end = end_of(&smallest);
            if end + table.tail() > total {
                let needed = align_up(end, ALIGN)
                    + match table {
                        TableKind::Gpt => ALIGN,
                        TableKind::Mbr => 0,
                    };
                return Err(LayoutError::TooSmall {
                    needed,
                    given: total,
                });
            }
            let extra = align_down(total - table.tail() - end, ALIGN);
            (place(&|min, _| min + extra), total)
        }
    };

    if table == TableKind::Mbr && disk_size / SECTOR > u64::from(u32::MAX) {
        return Err(LayoutError::TooLargeForMbr(disk_size));
    }
    Ok(Layout {
        table,
        disk_size,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn boot() -> Want {
        Want::Grow {
            min: 16 * MIB,
            default: 64 * MIB,
        }
    }

    #[test]
    fn default_sizes() {
        let gpt = plan(TableKind::Gpt, &[boot()], None).unwrap();
        assert_eq!(
            gpt.partitions,
            [Extent {
                start: MIB,
                len: 64 * MIB
            }]
        );
        assert_eq!(gpt.disk_size, 66 * MIB);

        let mbr = plan(TableKind::Mbr, &[boot(), Want::Exactly(8 * GIB)], None).unwrap();
        assert_eq!(
            mbr.partitions,
            [
                Extent {
                    start: MIB,
                    len: 64 * MIB
                },
                Extent {
                    start: 65 * MIB,
                    len: 8 * GIB
                },
            ]
        );
        assert_eq!(mbr.disk_size, 65 * MIB + 8 * GIB);
    }

    #[test]
    fn total_size_grows_the_boot_partition() {
        let gpt = plan(TableKind::Gpt, &[boot(), Want::Exactly(GIB)], Some(2 * GIB)).unwrap();
        let [first, cache] = gpt.partitions[..] else {
            panic!()
        };
        assert_eq!(first.start, MIB);
        assert_eq!(first.len % MIB, 0);
        assert_eq!(cache.start, first.end());
        assert_eq!(cache.len, GIB);
        assert!(cache.end() + GPT_BACKUP_SECTORS * SECTOR <= 2 * GIB);
        assert!(2 * GIB - cache.end() < MIB + GPT_BACKUP_SECTORS * SECTOR);
        assert_eq!(gpt.disk_size, 2 * GIB);

        let mbr = plan(TableKind::Mbr, &[boot()], Some(32 * MIB)).unwrap();
        assert_eq!(
            mbr.partitions,
            [Extent {
                start: MIB,
                len: 31 * MIB
            }]
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            plan(TableKind::Gpt, &[boot()], Some(16 * MIB)),
            Err(LayoutError::TooSmall {
                needed: 18 * MIB,
                given: 16 * MIB
            })
        );
        assert_eq!(
            plan(TableKind::Mbr, &[boot(), Want::Exactly(GIB)], Some(GIB)),
            Err(LayoutError::TooSmall {
                needed: 17 * MIB + GIB,
                given: GIB
            })
        );
        assert_eq!(
            plan(TableKind::Mbr, &[boot()], Some(1000)),
            Err(LayoutError::NotSectorMultiple(1000))
        );
        assert_eq!(
            plan(TableKind::Mbr, &[boot(), Want::Exactly(4 << 40)], None),
            Err(LayoutError::TooLargeForMbr(65 * MIB + (4 << 40)))
        );
        assert_eq!(
            plan(TableKind::Gpt, &[boot(), boot()], None),
            Err(LayoutError::SeveralGrow)
        );
        assert_eq!(plan(TableKind::Gpt, &[], None), Err(LayoutError::Empty));
    }
}
