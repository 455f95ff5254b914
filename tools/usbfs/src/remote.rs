//! The program's memory and descriptors, seen from the supervisor.

use std::os::fd::RawFd;

/// Reads `len` bytes at `addr` in process `pid`; `Err(EFAULT)` when they are not all there.
pub fn read(pid: u32, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` describes our own buffer of `len` bytes; the remote side is checked by
    // the kernel against the other process's mappings.
    let n = unsafe { libc::process_vm_readv(pid as i32, &local, 1, &remote, 1, 0) };
    if n == len as isize {
        Ok(buf)
    } else {
        Err(libc::EFAULT)
    }
}

/// Writes `data` at `addr` in process `pid`.
pub fn write(pid: u32, addr: u64, data: &[u8]) -> Result<(), i32> {
    if data.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: as in `read`; our buffer is only read.
    let n = unsafe { libc::process_vm_writev(pid as i32, &local, 1, &remote, 1, 0) };
    if n == data.len() as isize {
        Ok(())
    } else {
        Err(libc::EFAULT)
    }
}

/// Writes several pieces in one system call: `(address, bytes)` each.
pub fn write_many(pid: u32, pieces: &[(u64, &[u8])]) -> Result<(), i32> {
    let pieces: Vec<&(u64, &[u8])> = pieces.iter().filter(|p| !p.1.is_empty()).collect();
    let local: Vec<libc::iovec> = pieces
        .iter()
        .map(|(_, d)| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let remote: Vec<libc::iovec> = pieces
        .iter()
        .map(|(a, d)| libc::iovec {
            iov_base: *a as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let total: usize = pieces.iter().map(|p| p.1.len()).sum();
    if total == 0 {
        return Ok(());
    }
    // SAFETY: every local iovec describes a live slice we only read; the remote side is
    // checked by the kernel against the other process's mappings.
    let n = unsafe {
        libc::process_vm_writev(
            pid as i32,
            local.as_ptr(),
            local.len() as libc::c_ulong,
            remote.as_ptr(),
            remote.len() as libc::c_ulong,
            0,
        )
    };
    if n == total as isize {
        Ok(())
    } else {
        Err(libc::EFAULT)
    }
}

/// Reads a NUL-terminated path (at most 4096 bytes) page by page, so a string near the end of
/// a mapping is still read.
pub fn read_cstr(pid: u32, addr: u64) -> Result<Vec<u8>, i32> {
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < 4096 {
        let page_left = 4096 - (at % 4096) as usize;
        let chunk = read(pid, at, page_left)?;
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
        at += page_left as u64;
    }
    Err(libc::ENAMETOOLONG)
}

/// Whether descriptor `their_fd` of process `pid` is the same open file as our `our_fd`.
pub fn same_file(pid: u32, their_fd: u32, our_fd: RawFd) -> bool {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: kcmp only compares kernel objects; no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            libc::getpid() as libc::c_long,
            pid as libc::c_long,
            KCMP_FILE,
            our_fd as libc::c_long,
            their_fd as libc::c_long,
        )
    };
    r == 0
}

/// Credentials of a thread, as `/proc/PID/status` shows them: filesystem uid, filesystem gid
/// and supplementary groups.
pub struct Creds {
    /// Filesystem user id.
    pub fsuid: u32,
    /// Filesystem group id.
    pub fsgid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// Reads the credentials of `pid`.
pub fn creds(pid: u32) -> Option<Creds> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Vec<u32> {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let uid = field("Uid:");
    let gid = field("Gid:");
    Some(Creds {
        fsuid: *uid.get(3)?,
        fsgid: *gid.get(3)?,
        groups: field("Groups:"),
    })
}
