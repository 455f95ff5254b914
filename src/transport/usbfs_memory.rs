//! The Linux usbfs memory budget and how many depth transfers fit in it.
//!
//! Every URB submitted through usbfs (nusb's and ours) is charged against one global limit,
//! `usbcore.usbfs_memory_mb` (default 16 MiB, 0 = unlimited), shared by every process on the
//! machine. A submit past the limit fails with ENOMEM. One NFOV depth frame is 5.3 MB and one
//! WFOV frame 9.4 MB, so the default leaves room for one or two frames in flight. The SDK caps its
//! pool at 10 MB for this reason; here the pool is sized from the limit the kernel actually has,
//! after setting aside what the colour (isochronous) and IMU streams need.

use std::path::{Path, PathBuf};

/// Where the kernel exposes the limit, relative to the sysfs root.
pub const USBFS_MEMORY_MB_SYSFS: &str = "module/usbcore/parameters/usbfs_memory_mb";

/// The kernel's default limit in MiB, assumed when sysfs does not show the parameter.
pub const DEFAULT_USBFS_MEMORY_MB: u32 = 16;

/// At most this many depth transfers are kept in flight (the SDK's `USB_CMD_MAX_XFR_COUNT`).
pub const MAX_DEPTH_TRANSFERS: usize = 8;

/// The SDK's in-flight pool cap on Linux, in bytes (`USB_CMD_MAX_XFR_POOL`).
pub const SDK_LINUX_POOL_BYTES: u64 = 10_000_000;

/// What to tell a user whose kernel refused transfer memory.
pub const USBFS_MEMORY_HINT: &str = "the kernel's usbfs memory limit is too small: raise \
usbcore.usbfs_memory_mb (0 = unlimited) with `echo 0 | sudo tee \
/sys/module/usbcore/parameters/usbfs_memory_mb`, or permanently with `usbcore.usbfs_memory_mb=0` \
on the kernel command line";

/// The usbfs memory limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsbfsBudget {
    /// `usbfs_memory_mb` is 0: no limit.
    Unlimited,
    /// The limit in MiB.
    Limited {
        /// `usbfs_memory_mb`.
        megabytes: u32,
    },
}

impl UsbfsBudget {
    /// The kernel default (16 MiB).
    pub const DEFAULT: UsbfsBudget = UsbfsBudget::Limited {
        megabytes: DEFAULT_USBFS_MEMORY_MB,
    };

    /// The limit in bytes (the kernel shifts the MiB value left by 20), `None` when unlimited.
    pub fn limit_bytes(self) -> Option<u64> {
        match self {
            UsbfsBudget::Unlimited => None,
            UsbfsBudget::Limited { megabytes } => Some(u64::from(megabytes) << 20),
        }
    }
}

/// The usbfs memory budget could not be read or does not fit the streams asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsbfsMemoryError {
    /// The sysfs file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The sysfs file does not hold a decimal number.
    #[error("{} holds {text:?}, not a number of MiB", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Its (trimmed) content.
        text: String,
    },
    /// Not even one depth transfer fits beside the other streams.
    #[error(
        "usbfs memory limit of {megabytes} MiB leaves no room for one depth transfer of \
         {transfer_bytes} bytes after {reserved_bytes} bytes for the colour and IMU streams; \
         {USBFS_MEMORY_HINT}"
    )]
    TooSmall {
        /// `usbfs_memory_mb`.
        megabytes: u32,
        /// Bytes set aside for the other streams.
        reserved_bytes: u64,
        /// What one depth transfer is charged.
        transfer_bytes: u64,
    },
}

/// Parses the content of the `usbfs_memory_mb` parameter file.
pub fn parse_usbfs_memory_mb(text: &str, path: &Path) -> Result<UsbfsBudget, UsbfsMemoryError> {
    let trimmed = text.trim();
    match trimmed.parse::<u32>() {
        Ok(0) => Ok(UsbfsBudget::Unlimited),
        Ok(megabytes) => Ok(UsbfsBudget::Limited { megabytes }),
        Err(_) => Err(UsbfsMemoryError::Parse {
            path: path.to_owned(),
            text: trimmed.chars().take(64).collect(),
        }),
    }
}

/// Reads the budget below a sysfs root (`/sys` on a real system; a temporary directory in
/// tests). `Ok(None)` when the parameter file does not exist (usbcore absent, not Linux).
pub fn read_usbfs_budget_at(sysfs_root: &Path) -> Result<Option<UsbfsBudget>, UsbfsMemoryError> {
    let path = sysfs_root.join(USBFS_MEMORY_MB_SYSFS);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_usbfs_memory_mb(&text, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(UsbfsMemoryError::Read { path, source }),
    }
}

/// Reads the budget of this machine from `/sys`, assuming the kernel default when the
/// parameter is not exposed.
pub fn read_usbfs_budget() -> Result<UsbfsBudget, UsbfsMemoryError> {
    Ok(read_usbfs_budget_at(Path::new("/sys"))?.unwrap_or(UsbfsBudget::DEFAULT))
}

/// Per-URB kernel bookkeeping charged beside the data (struct async, struct urb and slack),
/// rounded up so that estimates err on the side of fewer transfers.
const URB_OVERHEAD_BYTES: u64 = 1024;
/// usbfs splits large bulk buffers into scatter-gather pieces of this size...
const SG_CHUNK_BYTES: u64 = 16 * 1024;
/// ...each charged one `struct scatterlist` (32 bytes on 64-bit kernels).
const SG_ENTRY_BYTES: u64 = 32;
/// Charged per isochronous packet descriptor (kernel and user copies, rounded up).
const ISO_PACKET_BYTES: u64 = 32;

/// What usbfs charges against the budget for one URB of `buffer_len` bytes with `iso_packets`
/// packet descriptors (0 for bulk and interrupt). An estimate that errs high.
pub fn urb_cost_bytes(buffer_len: usize, iso_packets: usize) -> u64 {
    let len = buffer_len as u64;
    URB_OVERHEAD_BYTES
        + len
        + len.div_ceil(SG_CHUNK_BYTES) * SG_ENTRY_BYTES
        + iso_packets as u64 * ISO_PACKET_BYTES
}

/// Memory set aside for the streams that run beside depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StreamReservation {
    /// Bytes for the colour stream's isochronous transfers.
    pub color_bytes: u64,
    /// Bytes for the IMU stream's transfers.
    pub imu_bytes: u64,
    /// Bytes for the command channels (one command and one response transfer per device).
    pub command_bytes: u64,
}

impl StreamReservation {
    /// A reservation for `color_transfers` iso transfers of `packets` × `packet_size` bytes,
    /// `imu_transfers` IMU transfers of `imu_len` bytes, and two command channels.
    pub fn new(
        color_transfers: usize,
        packets: usize,
        packet_size: usize,
        imu_transfers: usize,
        imu_len: usize,
    ) -> StreamReservation {
        // Command and response transfers while streaming are small (a status read is one
        // 1024-byte packet); 4 KiB each covers them. NV_DATA_GET's 2,000,896-byte read happens
        // before any stream starts, so it does not compete with the streams.
        let command = 2 * 2 * urb_cost_bytes(4096, 0);
        StreamReservation {
            color_bytes: color_transfers as u64
                * urb_cost_bytes(packets.saturating_mul(packet_size), packets),
            imu_bytes: imu_transfers as u64 * urb_cost_bytes(imu_len, 0),
            command_bytes: command,
        }
    }

    /// Everything reserved, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.color_bytes + self.imu_bytes + self.command_bytes
    }
}

/// The SDK's rule: keep adding transfers of `buffer_len` while the pool (which starts at one
/// buffer) is below `pool_cap_bytes`, up to [`MAX_DEPTH_TRANSFERS`].
pub fn sdk_pool_transfers(buffer_len: usize, pool_cap_bytes: u64) -> usize {
    let len = buffer_len.max(1) as u64;
    let mut pool = len;
    let mut count = 0;
    while count < MAX_DEPTH_TRANSFERS && pool < pool_cap_bytes {
        count += 1;
        pool += len;
    }
    count
}

/// How many depth transfers of `buffer_len` bytes to keep in flight: as many as the budget holds
/// after `reserved`, at most [`MAX_DEPTH_TRANSFERS`], and at least one or an error that says
/// how to raise the limit.
pub fn depth_transfers_in_flight(
    budget: UsbfsBudget,
    buffer_len: usize,
    reserved: &StreamReservation,
) -> Result<usize, UsbfsMemoryError> {
    let Some(limit) = budget.limit_bytes() else {
        return Ok(MAX_DEPTH_TRANSFERS);
    };
    let cost = urb_cost_bytes(buffer_len, 0);
    let available = limit.saturating_sub(reserved.total_bytes());
    let fits = usize::try_from(available / cost).unwrap_or(usize::MAX);
    match fits.min(MAX_DEPTH_TRANSFERS) {
        0 => Err(UsbfsMemoryError::TooSmall {
            megabytes: match budget {
                UsbfsBudget::Limited { megabytes } => megabytes,
                UsbfsBudget::Unlimited => 0,
            },
            reserved_bytes: reserved.total_bytes(),
            transfer_bytes: cost,
        }),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Depth buffer sizes per mode, rounded up to 1024 (protocol/depth.md, "Modes").
    const NFOV: usize = 5_311_488;
    const WFOV_UNBINNED: usize = 9_439_232;
    const WFOV_2X2: usize = 3_777_536;
    const PASSIVE_IR: usize = 1_678_336;

    fn fake_sysfs(content: Option<&str>) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "freek4a-sysfs-{}-{}",
            std::process::id(),
            content
                .map(|c| c.trim().to_owned())
                .unwrap_or("none".into())
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("module/usbcore/parameters")).unwrap();
        if let Some(c) = content {
            std::fs::write(root.join(USBFS_MEMORY_MB_SYSFS), c).unwrap();
        }
        root
    }

    #[test]
    fn sysfs_values_parse() {
        let root = fake_sysfs(Some("16\n"));
        assert_eq!(
            read_usbfs_budget_at(&root).unwrap(),
            Some(UsbfsBudget::Limited { megabytes: 16 })
        );
        let root = fake_sysfs(Some("0\n"));
        assert_eq!(
            read_usbfs_budget_at(&root).unwrap(),
            Some(UsbfsBudget::Unlimited)
        );
        let root = fake_sysfs(Some("1000\n"));
        assert_eq!(
            read_usbfs_budget_at(&root).unwrap().unwrap().limit_bytes(),
            Some(1000 << 20)
        );
        let root = fake_sysfs(None);
        assert_eq!(read_usbfs_budget_at(&root).unwrap(), None);
        let root = fake_sysfs(Some("lots\n"));
        let err = read_usbfs_budget_at(&root).unwrap_err();
        assert!(matches!(err, UsbfsMemoryError::Parse { ref text, .. } if text == "lots"));
        assert!(
            err.to_string().contains("usbfs_memory_mb holds \"lots\""),
            "{err}"
        );
    }

    #[test]
    fn sdk_rule_reproduces_its_published_counts() {
        assert_eq!(sdk_pool_transfers(NFOV, SDK_LINUX_POOL_BYTES), 1);
        assert_eq!(sdk_pool_transfers(WFOV_UNBINNED, SDK_LINUX_POOL_BYTES), 1);
        assert_eq!(sdk_pool_transfers(WFOV_2X2, SDK_LINUX_POOL_BYTES), 2);
        assert_eq!(sdk_pool_transfers(PASSIVE_IR, SDK_LINUX_POOL_BYTES), 5);
        assert_eq!(sdk_pool_transfers(252, SDK_LINUX_POOL_BYTES), 8);
        assert_eq!(sdk_pool_transfers(NFOV, 80_000_000), 8);
    }

    #[test]
    fn cost_counts_data_and_bookkeeping() {
        assert_eq!(urb_cost_bytes(0, 0), 1024);
        assert_eq!(urb_cost_bytes(16 * 1024, 0), 1024 + 16384 + 32);
        assert_eq!(urb_cost_bytes(16 * 1024 + 1, 0), 1024 + 16385 + 64);
        assert_eq!(urb_cost_bytes(32 * 1024, 32), 1024 + 32768 + 64 + 32 * 32);
    }

    #[test]
    fn depth_pool_fits_the_default_budget() {
        let default = UsbfsBudget::DEFAULT;
        let none = StreamReservation::default();
        // 16 MiB = 16,777,216 bytes: three NFOV frames would need about 15.95 MB.
        assert_eq!(depth_transfers_in_flight(default, NFOV, &none).unwrap(), 3);
        // Colour: 8 transfers of 32 packets of 24 KiB (about 6.3 MB) plus 8 IMU transfers.
        let streams = StreamReservation::new(8, 32, 24 * 1024, 8, 252);
        assert!(streams.total_bytes() > 6_000_000 && streams.total_bytes() < 6_500_000);
        assert_eq!(
            depth_transfers_in_flight(default, NFOV, &streams).unwrap(),
            1
        );
        assert_eq!(
            depth_transfers_in_flight(default, PASSIVE_IR, &streams).unwrap(),
            6
        );
        assert_eq!(
            depth_transfers_in_flight(UsbfsBudget::Unlimited, WFOV_UNBINNED, &streams).unwrap(),
            8
        );
        assert_eq!(
            depth_transfers_in_flight(UsbfsBudget::Limited { megabytes: 1024 }, NFOV, &streams)
                .unwrap(),
            8
        );
    }

    #[test]
    fn too_small_budget_says_how_to_raise_it() {
        let streams = StreamReservation::new(8, 32, 24 * 1024, 8, 252);
        // The default leaves room for exactly one WFOV frame; an 8 MiB limit leaves none.
        assert_eq!(
            depth_transfers_in_flight(UsbfsBudget::DEFAULT, WFOV_UNBINNED, &streams).unwrap(),
            1
        );
        let small = UsbfsBudget::Limited { megabytes: 8 };
        let err = depth_transfers_in_flight(small, WFOV_UNBINNED, &streams).unwrap_err();
        let UsbfsMemoryError::TooSmall {
            megabytes,
            transfer_bytes,
            ..
        } = err
        else {
            panic!("wrong error {err:?}");
        };
        assert_eq!(megabytes, 8);
        assert_eq!(transfer_bytes, urb_cost_bytes(WFOV_UNBINNED, 0));
        let text = err.to_string();
        assert!(text.contains("usbcore.usbfs_memory_mb"), "{text}");
        assert!(
            text.contains("echo 0 | sudo tee /sys/module/usbcore/parameters/usbfs_memory_mb"),
            "{text}"
        );
        assert!(text.contains("usbcore.usbfs_memory_mb=0"), "{text}");
    }
}
