//! The program's side: a user + mount namespace whose `/sys/bus/usb` and `/dev/bus/usb` show
//! the emulated units, and a seccomp filter that hands the usbfs-relevant system calls to the
//! supervisor.
//!
//! Everything the child does between `fork` and `exec` is prepared by the parent as a list of
//! [`Op`]s holding ready-made C strings, so the child runs nothing but system calls.

use std::ffi::{CString, OsStr};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// First descriptor number a device node is injected at (see [`NODE_FD_END`]).
///
/// `read`, `lseek` and `close` cannot be told apart by file in a seccomp filter, only by number,
/// so node descriptors live in a range of their own that programs do not reach in practice.
pub const NODE_FD_BASE: u32 = 900;
/// One past the last node descriptor number.
pub const NODE_FD_END: u32 = 964;
/// Where the child keeps a path descriptor of a directory it mounts over, to bind its old
/// entries back.
const OLD_DIR_FD: RawFd = 1010;

/// One step of the child's preparation.
pub enum Op {
    /// `unshare(flags)`.
    Unshare(libc::c_int),
    /// Writes a whole file (uid_map and friends).
    Write(CString, Vec<u8>),
    /// Makes every mount private, so nothing propagates out of the new namespace.
    MakePrivate,
    /// Opens a directory as a path descriptor at [`OLD_DIR_FD`].
    KeepOld(CString),
    /// Mounts a fresh tmpfs.
    Tmpfs(CString),
    /// `mkdir` with a mode.
    Mkdir(CString, u32),
    /// A regular file with contents and a mode.
    File(CString, Vec<u8>, u32),
    /// A symbolic link: target, path.
    Symlink(CString, CString),
    /// Recursive bind mount: source, target.
    Bind(CString, CString),
    /// Closes [`OLD_DIR_FD`].
    DropOld,
}

fn c(p: impl AsRef<OsStr>) -> CString {
    CString::new(p.as_ref().as_bytes()).unwrap_or_default()
}

/// What a mounted-over directory held: name and kind.
enum Entry {
    Dir(String),
    File(String),
    Link(String, std::path::PathBuf),
}

fn entries(dir: &Path, skip: &[&str]) -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if skip.contains(&name.as_str()) {
            continue;
        }
        let Ok(t) = e.file_type() else { continue };
        if t.is_symlink() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                out.push(Entry::Link(name, target));
            }
        } else if t.is_dir() {
            out.push(Entry::Dir(name));
        } else {
            out.push(Entry::File(name));
        }
    }
    out
}

/// Mounts a tmpfs over `dir` and binds back everything it held except `skip`.
pub fn overlay_dir(ops: &mut Vec<Op>, dir: &Path, skip: &[&str]) {
    let old = entries(dir, skip);
    ops.push(Op::KeepOld(c(dir)));
    ops.push(Op::Tmpfs(c(dir)));
    ops.push(Op::Mkdir(c(dir), 0o755));
    for e in old {
        match e {
            Entry::Dir(n) => {
                ops.push(Op::Mkdir(c(dir.join(&n)), 0o755));
                ops.push(Op::Bind(
                    c(format!("/proc/self/fd/{OLD_DIR_FD}/{n}")),
                    c(dir.join(&n)),
                ));
            }
            Entry::File(n) => {
                ops.push(Op::File(c(dir.join(&n)), Vec::new(), 0o644));
                ops.push(Op::Bind(
                    c(format!("/proc/self/fd/{OLD_DIR_FD}/{n}")),
                    c(dir.join(&n)),
                ));
            }
            Entry::Link(n, target) => ops.push(Op::Symlink(c(target), c(dir.join(&n)))),
        }
    }
    ops.push(Op::DropOld);
}

/// The namespace preparation for this user: a user namespace (unless root), a private mount
/// namespace.
pub fn namespaces(ops: &mut Vec<Op>) {
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid == 0 {
        ops.push(Op::Unshare(libc::CLONE_NEWNS));
    } else {
        ops.push(Op::Unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS));
        ops.push(Op::Write(c("/proc/self/setgroups"), b"deny".to_vec()));
        ops.push(Op::Write(
            c("/proc/self/uid_map"),
            format!("{uid} {uid} 1").into_bytes(),
        ));
        ops.push(Op::Write(
            c("/proc/self/gid_map"),
            format!("{gid} {gid} 1").into_bytes(),
        ));
    }
    ops.push(Op::MakePrivate);
}

/// Adds the ops that create a file tree described as (relative path, contents) under `root`;
/// a `None` content is a directory, a path starting with `@` a symlink spec `@target`.
pub fn tree(ops: &mut Vec<Op>, root: &Path, items: &[TreeItem]) {
    for it in items {
        let p = root.join(&it.path);
        match &it.kind {
            TreeKind::Dir => ops.push(Op::Mkdir(c(&p), 0o755)),
            TreeKind::File(data, mode) => ops.push(Op::File(c(&p), data.clone(), *mode)),
            TreeKind::Link(target) => ops.push(Op::Symlink(c(target), c(&p))),
        }
    }
}

/// An entry of a generated tree.
pub struct TreeItem {
    /// Path relative to the tree's root.
    pub path: String,
    /// What it is.
    pub kind: TreeKind,
}

/// Kind of a [`TreeItem`].
pub enum TreeKind {
    /// A directory.
    Dir,
    /// A file with contents and mode.
    File(Vec<u8>, u32),
    /// A symbolic link to this target.
    Link(String),
}

pub fn say(msg: &[u8]) {
    // SAFETY: writing a valid buffer to stderr.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// Writes a number without allocating.
pub fn say_num(mut v: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    say(&buf[at..]);
}

/// Runs `ops` in the child. Returns the step that failed (its index) and errno.
///
/// Only system calls run here: the parent may have had other threads when it forked.
pub fn run_ops(ops: &[Op]) -> Result<(), (usize, i32)> {
    for (i, op) in ops.iter().enumerate() {
        // SAFETY (all calls below): every pointer is a NUL-terminated CString or a byte buffer
        // owned by `ops`, alive for the call.
        let r = unsafe {
            match op {
                Op::Unshare(f) => libc::unshare(*f),
                Op::Write(p, data) => {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        -1
                    } else {
                        let n = libc::write(fd, data.as_ptr().cast(), data.len());
                        libc::close(fd);
                        if n == data.len() as isize {
                            0
                        } else {
                            -1
                        }
                    }
                }
                Op::MakePrivate => libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ),
                Op::KeepOld(p) => {
                    let fd = libc::open(p.as_ptr(), libc::O_PATH | libc::O_DIRECTORY);
                    if fd < 0 {
                        -1
                    } else {
                        let r = libc::dup2(fd, OLD_DIR_FD);
                        libc::close(fd);
                        if r < 0 {
                            -1
                        } else {
                            0
                        }
                    }
                }
                Op::Tmpfs(p) => libc::mount(
                    c"freek4a-usbfs".as_ptr(),
                    p.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID,
                    c"mode=755".as_ptr().cast(),
                ),
                Op::Mkdir(p, mode) => {
                    let r = libc::mkdir(p.as_ptr(), *mode);
                    if r < 0 && *libc::__errno_location() == libc::EEXIST {
                        0
                    } else {
                        libc::chmod(p.as_ptr(), *mode)
                    }
                }
                Op::File(p, data, mode) => {
                    let fd = libc::open(
                        p.as_ptr(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                        0o600,
                    );
                    if fd < 0 {
                        -1
                    } else {
                        let n = libc::write(fd, data.as_ptr().cast(), data.len());
                        let r = libc::fchmod(fd, *mode);
                        libc::close(fd);
                        if n == data.len() as isize && r == 0 {
                            0
                        } else {
                            -1
                        }
                    }
                }
                Op::Symlink(t, p) => libc::symlink(t.as_ptr(), p.as_ptr()),
                Op::Bind(s, t) => libc::mount(
                    s.as_ptr(),
                    t.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ),
                Op::DropOld => libc::close(OLD_DIR_FD),
            }
        };
        if r < 0 {
            // SAFETY: reading this thread's errno.
            let e = unsafe { *libc::__errno_location() };
            // Binding back what a mount hid is best effort: a file that cannot be bound (a
            // socket, say) is simply missing in the namespace.
            if matches!(op, Op::Bind(..) | Op::Symlink(..)) {
                continue;
            }
            say(b"freek4a-usbfs: namespace setup failed at step ");
            say_num(i as u64);
            say(b", errno ");
            say_num(e as u64);
            say(b"\n");
            return Err((i, e));
        }
    }
    Ok(())
}

// Classic BPF, as seccomp takes it.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_AND_K: u16 = 0x54;
const BPF_RET_K: u16 = 0x06;
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: u32) -> u32 {
    16 + 8 * i
}

/// A jump target while assembling.
#[derive(Clone, Copy)]
enum L {
    Next,
    Allow,
    Notify,
    Ioctl,
    Fd,
}

/// The filter: `open`/`openat`/`openat2` and every ioctl of type `'U'` go to the supervisor,
/// and so do `read`, `pread64`, `lseek` and `close` on descriptors of the node range.
pub fn filter() -> Vec<libc::sock_filter> {
    use L::*;
    // (code, k, jump-if-true, jump-if-false) with symbolic targets.
    let mut prog: Vec<(u16, u32, L, L)> = vec![
        (BPF_LD_W_ABS, OFF_ARCH, Next, Next),
        (BPF_JEQ_K, AUDIT_ARCH_X86_64, Next, Allow),
        (BPF_LD_W_ABS, OFF_NR, Next, Next),
    ];
    for nr in [libc::SYS_open, libc::SYS_openat, libc::SYS_openat2] {
        prog.push((BPF_JEQ_K, nr as u32, Notify, Next));
    }
    prog.push((BPF_JEQ_K, libc::SYS_ioctl as u32, Ioctl, Next));
    for nr in [
        libc::SYS_read,
        libc::SYS_pread64,
        libc::SYS_lseek,
        libc::SYS_close,
    ] {
        prog.push((BPF_JEQ_K, nr as u32, Fd, Next));
    }
    prog.push((BPF_JEQ_K, u32::MAX, Allow, Allow));
    // Classic BPF jumps only forward: the tests come first, the returns last.
    let ioctl_at = prog.len();
    prog.push((BPF_LD_W_ABS, off_arg(1), Next, Next));
    prog.push((BPF_AND_K, 0xFF00, Next, Next));
    prog.push((BPF_JEQ_K, 0x5500, Notify, Allow));
    let fd_at = prog.len();
    prog.push((BPF_LD_W_ABS, off_arg(0), Next, Next));
    prog.push((BPF_JGE_K, NODE_FD_BASE, Next, Allow));
    prog.push((BPF_JGE_K, NODE_FD_END, Allow, Notify));
    let allow_at = prog.len();
    prog.push((BPF_RET_K, libc::SECCOMP_RET_ALLOW, Next, Next));
    let notify_at = prog.len();
    prog.push((BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF, Next, Next));
    let target = |l: L, at: usize| -> u8 {
        let to = match l {
            Next => at + 1,
            Allow => allow_at,
            Notify => notify_at,
            Ioctl => ioctl_at,
            Fd => fd_at,
        };
        (to - at - 1) as u8
    };
    prog.iter()
        .enumerate()
        .map(|(at, &(code, k, t, f))| libc::sock_filter {
            code,
            jt: if code == BPF_JEQ_K || code == BPF_JGE_K {
                target(t, at)
            } else {
                0
            },
            jf: if code == BPF_JEQ_K || code == BPF_JGE_K {
                target(f, at)
            } else {
                0
            },
            k,
        })
        .collect()
}

/// Installs `prog` with a listener; returns the listener descriptor.
pub fn install_filter(prog: &[libc::sock_filter]) -> Result<RawFd, i32> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        // SAFETY: reading errno.
        return Err(unsafe { *libc::__errno_location() });
    }
    let mut flags =
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    loop {
        // SAFETY: `fprog` points at `prog`, alive for the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const libc::sock_fprog,
            )
        };
        if fd >= 0 {
            return Ok(fd as RawFd);
        }
        // SAFETY: reading errno.
        let e = unsafe { *libc::__errno_location() };
        // Kernels before 5.19 lack WAIT_KILLABLE_RECV.
        if e == libc::EINVAL && flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
            flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
            continue;
        }
        return Err(e);
    }
}

/// Sends `fd` over the connected Unix socket `sock`.
pub fn send_fd(sock: RawFd, fd: RawFd) -> bool {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = [0u64; 4];
    // SAFETY: msghdr is plain data; zero is a valid starting value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as usize;
    // SAFETY: msg_control points at `space`, large enough for one descriptor; the header
    // pointer returned by CMSG_FIRSTHDR lies inside it.
    unsafe {
        let h = libc::CMSG_FIRSTHDR(&msg);
        (*h).cmsg_level = libc::SOL_SOCKET;
        (*h).cmsg_type = libc::SCM_RIGHTS;
        (*h).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(h).cast::<i32>(), fd);
        libc::sendmsg(sock, &msg, 0) == 1
    }
}

/// Receives a descriptor sent with [`send_fd`].
pub fn recv_fd(sock: RawFd) -> Option<RawFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = [0u64; 4];
    // SAFETY: msghdr is plain data; zero is a valid starting value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&space);
    // SAFETY: the buffers above outlive the call; the header read back lies inside `space`.
    unsafe {
        if libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) != 1 {
            return None;
        }
        let h = libc::CMSG_FIRSTHDR(&msg);
        if h.is_null() || (*h).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        Some(std::ptr::read_unaligned(libc::CMSG_DATA(h).cast::<i32>()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dump() {
        for (i, f) in super::filter().iter().enumerate() {
            eprintln!("{i}: {:04x} jt {} jf {} k {:#x}", f.code, f.jt, f.jf, f.k);
        }
    }
}
