//! `freek4a-usbfs`: runs a program, unmodified, against emulated Azure Kinect units through
//! Linux's usbfs interface (test tool, not part of the product).
//!
//! The program runs in its own user + mount namespace where `/sys/bus/usb` and
//! `/dev/bus/usb` show the emulated units. A seccomp filter hands its `open`s, its usbfs
//! ioctls and the `read`/`lseek`/`close` of device-node descriptors to this supervisor
//! (`SECCOMP_RET_USER_NOTIF`), which answers them the way the kernel's usbfs does, over
//! [`freek4a::emulator::EmulatedBackend`]. Every other system call goes to the kernel.

// `--emulate=SPEC` as the recorder reads it: the CLI's parser, compiled in here too.
#[allow(dead_code)]
#[path = "../../../src/cli/emulate.rs"]
mod emulate;
mod engine;
mod remote;
mod sandbox;
mod sysfs;
mod usbfs;

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use clap::Parser;

use emulate::EmulateSpec;
// The shared `emulate` module names the library's emulator and types as `crate::emulator` and
// `crate::types`.
use freek4a::emulator::{EmulatedBackend, Fault, FaultRule, FaultTarget};
use freek4a::types::Stream;
use freek4a::{emulator, types};

use crate::sandbox::{Op, NODE_FD_BASE, NODE_FD_END};
use crate::usbfs::{Node, Opened, World};

/// Runs PROGRAM against emulated Azure Kinect units through Linux's usbfs interface.
#[derive(Parser, Debug)]
#[command(name = "freek4a-usbfs", version)]
struct Args {
    /// The emulated units, as for `--emulate` (units, seed, speed, unplug_after, unplug_unit, fault, cables, firmware, journal).
    #[arg(long, default_value = "")]
    emulate: String,
    /// The usbfs memory budget in MiB (`usbcore.usbfs_memory_mb`; 0: no limit).
    #[arg(long, default_value_t = 16)]
    usbfs_memory_mb: u64,
    /// Permission bits of the device nodes (octal; owner root).
    #[arg(long, default_value = "0660", value_parser = parse_mode)]
    node_mode: u32,
    /// Group of the device nodes (default: the caller's group, as the udev rule's group or
    /// seat access gives).
    #[arg(long)]
    node_group: Option<u32>,
    /// Inject a fault on unit 0 from the start: `TARGET:KIND[:AFTER[:TIMES]]` with TARGET
    /// `depth`, `color`, `imu` or a command code (`0x115`) and KIND `stall`, `timeout`, `short`,
    /// `oversized`, `corrupt` or `disconnect` (TIMES 0: every time). May be repeated.
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<FaultRule>,
    /// Append every command packet the program sends to this file, one a line:
    /// `<product id> <endpoint> <command code> <command data in hex>`.
    #[arg(long)]
    log_commands: Option<PathBuf>,
    /// Print every usbfs request on stderr.
    #[arg(long)]
    trace: bool,
    /// At the end, print the CPU seconds (user + system) of the program and of the supervisor
    /// on stderr: `freek4a-usbfs: cpu program=S supervisor=S`.
    #[arg(long)]
    report_cpu: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    program: Vec<String>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("`{s}` is not an octal mode"))
}

fn parse_fault(s: &str) -> Result<FaultRule, String> {
    let bad = || format!("`{s}` is not TARGET:KIND[:AFTER[:TIMES]]");
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=4).contains(&parts.len()) {
        return Err(bad());
    }
    let target = match Stream::from_name(parts[0]) {
        Some(stream) => FaultTarget::Stream(stream),
        None => FaultTarget::Command(
            u32::from_str_radix(parts[0].trim_start_matches("0x"), 16).map_err(|_| bad())?,
        ),
    };
    let fault = match parts[1] {
        "stall" => Fault::Stall,
        "timeout" => Fault::Timeout,
        "short" => Fault::Short,
        "oversized" => Fault::Oversized,
        "corrupt" => Fault::Corrupt,
        "disconnect" => Fault::Disconnect,
        _ => return Err(bad()),
    };
    let num = |i: usize, d: u64| -> Result<u64, String> {
        parts.get(i).map_or(Ok(d), |v| v.parse().map_err(|_| bad()))
    };
    let times = num(3, 1)?;
    Ok(FaultRule {
        unit: 0,
        target,
        fault,
        after: num(2, 0)?,
        times: (times > 0).then_some(times),
    })
}

fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Prepares the child's namespace: sysfs tree and device nodes.
fn plan(world: &World) -> Vec<Op> {
    let mut ops = Vec::new();
    sandbox::namespaces(&mut ops);
    let usb = Path::new("/sys/bus/usb");
    if usb.is_dir() {
        ops.push(Op::Tmpfs(CString::new("/sys/bus/usb").unwrap_or_default()));
    } else {
        sandbox::overlay_dir(&mut ops, Path::new("/sys/bus"), &["usb"]);
        ops.push(Op::Mkdir(
            CString::new("/sys/bus/usb").unwrap_or_default(),
            0o755,
        ));
    }
    sandbox::tree(&mut ops, usb, &sysfs::usb_tree(&world.functions));

    // /dev/bus/usb: mount over the deepest directory that exists.
    let levels = ["/dev/bus/usb", "/dev/bus", "/dev"];
    let deepest = levels
        .iter()
        .position(|p| Path::new(p).is_dir())
        .unwrap_or(2);
    if deepest == 0 {
        ops.push(Op::Tmpfs(CString::new("/dev/bus/usb").unwrap_or_default()));
    } else {
        let skip = if deepest == 1 { "usb" } else { "bus" };
        sandbox::overlay_dir(&mut ops, Path::new(levels[deepest]), &[skip]);
    }
    let mut items = vec![
        sandbox::TreeItem {
            path: "bus".into(),
            kind: sandbox::TreeKind::Dir,
        },
        sandbox::TreeItem {
            path: "bus/usb".into(),
            kind: sandbox::TreeKind::Dir,
        },
    ];
    let mut buses: Vec<u8> = world.functions.iter().map(|f| f.info.bus).collect();
    buses.dedup();
    for b in buses {
        items.push(sandbox::TreeItem {
            path: format!("bus/usb/{b:03}"),
            kind: sandbox::TreeKind::Dir,
        });
    }
    for f in &world.functions {
        items.push(sandbox::TreeItem {
            path: f.devnode().trim_start_matches("/dev/").to_string(),
            kind: sandbox::TreeKind::File(Vec::new(), world.node_mode),
        });
    }
    sandbox::tree(&mut ops, Path::new("/dev"), &items);
    ops
}

/// A reply to a notification.
enum Reply {
    Value(i64),
    Errno(i32),
    Continue,
    /// Inject this descriptor (ours) into the program and return its number there.
    Fd {
        fd: RawFd,
        at: Option<u32>,
        cloexec: bool,
    },
}

struct Supervisor {
    world: Arc<World>,
    listener: RawFd,
    /// Node behind each injected descriptor number (checked with kcmp before use).
    by_fd: Mutex<HashMap<u32, Arc<Node>>>,
}

impl Supervisor {
    fn respond(&self, id: u64, r: Reply) {
        match r {
            Reply::Fd { fd, at, cloexec } => {
                let add = libc::seccomp_notif_addfd {
                    id,
                    flags: (libc::SECCOMP_ADDFD_FLAG_SEND
                        | if at.is_some() {
                            libc::SECCOMP_ADDFD_FLAG_SETFD
                        } else {
                            0
                        }) as u32,
                    srcfd: fd as u32,
                    newfd: at.unwrap_or(0),
                    newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
                };
                // SAFETY: ADDFD reads a `seccomp_notif_addfd` we own.
                let r =
                    unsafe { libc::ioctl(self.listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &add) };
                if r < 0 {
                    // The program's open fails as the kernel's would when it cannot allocate.
                    self.respond(id, Reply::Errno(libc::EMFILE));
                }
            }
            r => {
                let (val, error, flags) = match r {
                    Reply::Value(v) => (v, 0, 0),
                    Reply::Errno(e) => (0, -e, 0),
                    _ => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
                };
                let resp = libc::seccomp_notif_resp {
                    id,
                    val,
                    error,
                    flags,
                };
                // SAFETY: SEND reads a `seccomp_notif_resp` we own. A program that died
                // meanwhile makes it fail with ENOENT, which needs no handling.
                unsafe { libc::ioctl(self.listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
            }
        }
    }

    fn id_valid(&self, id: u64) -> bool {
        // SAFETY: ID_VALID reads a u64 we own.
        unsafe { libc::ioctl(self.listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
    }

    /// The node behind descriptor `fd` of thread `pid`, if it is one.
    fn node_at(&self, pid: u32, fd: u32) -> Option<Arc<Node>> {
        let map = self.by_fd.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get(&fd) {
            if remote::same_file(pid, fd, n.event.as_raw_fd()) {
                return Some(n.clone());
            }
        }
        // A duplicated descriptor: compare with every open node.
        map.values()
            .find(|n| remote::same_file(pid, fd, n.event.as_raw_fd()))
            .cloned()
    }

    fn free_slot(&self, pid: u32) -> Option<u32> {
        let map = self.by_fd.lock().unwrap_or_else(|e| e.into_inner());
        (NODE_FD_BASE..NODE_FD_END).find(|fd| {
            !map.contains_key(fd) && !Path::new(&format!("/proc/{pid}/fd/{fd}")).exists()
        })
    }

    fn handle_open(&self, n: &libc::seccomp_notif) -> Reply {
        let a = n.data.args;
        let (path_at, flags) = match n.data.nr as libc::c_long {
            libc::SYS_open => (a[0], a[1] as i32),
            libc::SYS_openat => (a[1], a[2] as i32),
            _ => {
                // openat2: flags are the first field of `struct open_how`.
                let how = remote::read(n.pid, a[2], 8).unwrap_or_default();
                let f = how
                    .get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .unwrap_or(0);
                (a[1], f as i32)
            }
        };
        let Ok(path) = remote::read_cstr(n.pid, path_at) else {
            return Reply::Continue;
        };
        if !path.starts_with(b"/dev/bus/usb/") && path != usbfs::USBFS_MEMORY_MB_PATH.as_bytes() {
            return Reply::Continue;
        }
        if !self.id_valid(n.id) {
            return Reply::Errno(libc::EINTR);
        }
        let cloexec = flags & libc::O_CLOEXEC != 0;
        match self.world.open(n.pid, &path, flags) {
            Ok(Opened::Continue) => Reply::Continue,
            Ok(Opened::Contents(text)) => {
                // SAFETY: memfd_create with a static name.
                let fd = unsafe { libc::memfd_create(c"sysfs".as_ptr(), libc::MFD_CLOEXEC) };
                if fd < 0 {
                    return Reply::Errno(libc::ENOMEM);
                }
                // SAFETY: writing our buffer to our memfd and rewinding it.
                unsafe {
                    libc::write(fd, text.as_ptr().cast(), text.len());
                    libc::lseek(fd, 0, libc::SEEK_SET);
                }
                let r = Reply::Fd {
                    fd,
                    at: None,
                    cloexec,
                };
                self.respond(n.id, r);
                // SAFETY: our copy is no longer needed once injected.
                unsafe { libc::close(fd) };
                Reply::Value(i64::MIN)
            }
            Ok(Opened::Node(node)) => {
                let Some(slot) = self.free_slot(n.pid) else {
                    node.close();
                    return Reply::Errno(libc::EMFILE);
                };
                if self.world.trace {
                    eprintln!(
                        "usbfs: open {} as fd {slot}",
                        String::from_utf8_lossy(&path)
                    );
                }
                let fd = node.event.as_raw_fd();
                self.by_fd
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(slot, node);
                self.respond(
                    n.id,
                    Reply::Fd {
                        fd,
                        at: Some(slot),
                        cloexec,
                    },
                );
                Reply::Value(i64::MIN)
            }
            Err(e) => Reply::Errno(e),
        }
    }

    /// Handles one notification; `Reply::Value(i64::MIN)` means already answered.
    fn handle(self: &Arc<Self>, n: libc::seccomp_notif) -> Option<Reply> {
        let a = n.data.args;
        let nr = n.data.nr as libc::c_long;
        if nr == libc::SYS_open || nr == libc::SYS_openat || nr == libc::SYS_openat2 {
            return Some(self.handle_open(&n));
        }
        let fd = a[0] as u32;
        let Some(node) = self.node_at(n.pid, fd) else {
            return Some(Reply::Continue);
        };
        let answer = |r: usbfs::Answer| match r {
            Ok(v) => Reply::Value(v),
            Err(e) => Reply::Errno(e),
        };
        match nr {
            libc::SYS_read => Some(match node.read(a[2] as usize) {
                Ok(d) => match remote::write(n.pid, a[1], &d) {
                    Ok(()) => Reply::Value(d.len() as i64),
                    Err(e) => Reply::Errno(e),
                },
                Err(e) => Reply::Errno(e),
            }),
            libc::SYS_pread64 => {
                let saved = node.seek(0, libc::SEEK_CUR).unwrap_or(0);
                let r = node
                    .seek(a[3] as i64, libc::SEEK_SET)
                    .and_then(|_| node.read(a[2] as usize));
                let _ = node.seek(saved, libc::SEEK_SET);
                Some(match r {
                    Ok(d) => match remote::write(n.pid, a[1], &d) {
                        Ok(()) => Reply::Value(d.len() as i64),
                        Err(e) => Reply::Errno(e),
                    },
                    Err(e) => Reply::Errno(e),
                })
            }
            libc::SYS_lseek => Some(answer(node.seek(a[1] as i64, a[2] as i32))),
            libc::SYS_close => {
                // Kill and forget its URBs, then let the kernel close the descriptor.
                self.by_fd
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|_, v| !Arc::ptr_eq(v, &node));
                let me = self.clone();
                std::thread::spawn(move || {
                    node.close();
                    me.respond(n.id, Reply::Continue);
                });
                None
            }
            libc::SYS_ioctl => {
                let request = a[1] as u32;
                if self.world.trace
                    && request != usbfs::USBDEVFS_REAPURBNDELAY
                    && request != usbfs::USBDEVFS_SUBMITURB
                {
                    eprintln!("usbfs: {} ioctl {request:#x}", node.func.sysname());
                }
                // Requests that wait (for the device or for URBs to finish) get a thread of
                // their own so the others keep flowing.
                let waits = matches!(
                    request,
                    usbfs::USBDEVFS_REAPURB
                        | usbfs::USBDEVFS_DISCARDURB
                        | usbfs::USBDEVFS_RELEASEINTERFACE
                        | usbfs::USBDEVFS_SETINTERFACE
                );
                if waits {
                    let me = self.clone();
                    std::thread::spawn(move || {
                        let r = node.ioctl(n.pid, request, a[2]);
                        me.respond(n.id, answer(r));
                    });
                    None
                } else {
                    Some(answer(node.ioctl(n.pid, request, a[2])))
                }
            }
            _ => Some(Reply::Continue),
        }
    }

    fn serve(self: &Arc<Self>) {
        loop {
            let mut pfd = libc::pollfd {
                fd: self.listener,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd we own.
            let r = unsafe { libc::poll(&mut pfd, 1, 1000) };
            if r < 0 {
                // SAFETY: reading errno.
                if unsafe { *libc::__errno_location() } == libc::EINTR {
                    continue;
                }
                return;
            }
            if r == 0 {
                continue;
            }
            if pfd.revents & libc::POLLIN == 0 {
                // POLLHUP: no process uses the filter any more.
                return;
            }
            // SAFETY: seccomp_notif is plain data; RECV requires it zeroed.
            let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            // SAFETY: RECV fills the struct we own.
            if unsafe { libc::ioctl(self.listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) } < 0 {
                continue;
            }
            if let Some(reply) = self.handle(n) {
                if !matches!(reply, Reply::Value(i64::MIN)) {
                    self.respond(n.id, reply);
                }
            }
        }
    }
}

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("freek4a-usbfs: {e:#}");
            std::process::exit(125);
        }
    }
}

fn run() -> anyhow::Result<i32> {
    let args = Args::parse();
    let spec: EmulateSpec = args
        .emulate
        .parse()
        .map_err(|e| anyhow::anyhow!("--emulate={}: {e}", args.emulate))?;
    let program = find_program(&args.program[0])
        .with_context(|| format!("{}: command not found", args.program[0]))?;
    let mut espec = spec.emulator_spec();
    espec.faults.extend(args.faults.iter().copied());
    // The kernel's view: the program brings its own USB library (nusb applies its own
    // length rule in-process; libusb does not), so the device must not apply nusb's rule.
    let backend = EmulatedBackend::new(espec).usbfs_view();
    let mut world = World::new(backend, args.usbfs_memory_mb)?;
    // SAFETY: getuid/getgid take no pointers.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    world.root = uid == 0;
    world.node_mode = args.node_mode;
    world.node_gid = args.node_group.unwrap_or(gid);
    world.trace = args.trace;
    if let Some(p) = &args.log_commands {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("--log-commands {}", p.display()))?;
        *world.command_log.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }
    world.unplug_after = spec
        .unplug_after_sec
        .map(std::time::Duration::from_secs_f64);
    world.unplug_unit = usize::from(spec.unplug_unit);
    let ops = plan(&world);
    let filter = sandbox::filter();
    let prog = CString::new(program.as_os_str().as_bytes())?;
    let argv: Vec<CString> = args
        .program
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());

    let mut socks = [0; 2];
    // SAFETY: socketpair fills two ints we own.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            socks.as_mut_ptr(),
        )
    } != 0
    {
        bail!("socketpair: {}", std::io::Error::last_os_error());
    }
    // SAFETY: the child below runs only system calls on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: closing our copy of the parent's end.
        unsafe { libc::close(socks[0]) };
        if sandbox::run_ops(&ops).is_err() {
            // SAFETY: _exit ends the child without running the parent's destructors.
            unsafe { libc::_exit(126) };
        }
        let listener = match sandbox::install_filter(&filter) {
            Ok(l) => l,
            Err(e) => {
                sandbox::say(b"freek4a-usbfs: cannot install the seccomp filter, errno ");
                sandbox::say_num(e as u64);
                sandbox::say(b"\n");
                // SAFETY: as above.
                unsafe { libc::_exit(126) };
            }
        };
        if !sandbox::send_fd(socks[1], listener) {
            // SAFETY: as above.
            unsafe { libc::_exit(126) };
        }
        // SAFETY: closing descriptors the program must not inherit, then exec with
        // NUL-terminated strings and a null-terminated argument vector; environ is ours.
        unsafe {
            libc::close(listener);
            libc::close(socks[1]);
            libc::execv(prog.as_ptr(), argv_ptrs.as_ptr());
            let msg = b"freek4a-usbfs: cannot run the program\n";
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        }
    }
    // SAFETY: closing the child's end in the parent.
    unsafe { libc::close(socks[1]) };
    let listener = sandbox::recv_fd(socks[0]);
    // SAFETY: closing our end.
    unsafe { libc::close(socks[0]) };
    *world.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(pid as u32);
    let world = Arc::new(world);
    if let Some(listener) = listener {
        let sup = Arc::new(Supervisor {
            world: world.clone(),
            listener,
            by_fd: Mutex::new(HashMap::new()),
        });
        sup.serve();
    }
    let mut status = 0;
    loop {
        // SAFETY: waitpid fills an int we own.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        // SAFETY: reading errno.
        if r < 0 && unsafe { *libc::__errno_location() } != libc::EINTR {
            bail!("waitpid: {}", std::io::Error::last_os_error());
        }
    }
    if args.report_cpu {
        let cpu = |who: i32| {
            // SAFETY: getrusage fills a struct we own.
            let mut r: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            unsafe { libc::getrusage(who, &mut r) };
            let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
            t(r.ru_utime) + t(r.ru_stime)
        };
        eprintln!(
            "freek4a-usbfs: cpu program={:.3} supervisor={:.3}",
            cpu(libc::RUSAGE_CHILDREN),
            cpu(libc::RUSAGE_SELF)
        );
    }
    if listener.is_none() {
        bail!(
            "could not set up the program's namespace and filter (exit status {})",
            libc::WEXITSTATUS(status)
        );
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    })
}
