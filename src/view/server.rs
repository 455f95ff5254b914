//! The HTTP side: binding, routing, and answering every request (bad ones with a 4xx).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

use super::{Frame, Unit, UnitError, ViewError};
use crate::types::ColorResolution;

const INDEX_HTML: &str = include_str!("assets/index.html");
const VIEWER_JS: &str = include_str!("assets/viewer.js");
const VIEWER_CSS: &str = include_str!("assets/viewer.css");

/// Captures kept per unit for their image requests.
const KEPT_FRAMES: usize = 12;
/// Threads answering requests (a rig page asks for several images at once).
const WORKERS: usize = 4;
/// Nice value of those threads: encoding previews must yield to a recorder in the same
/// process (on Linux, setpriority on the calling thread's id 0 applies to that thread only).
const WORKER_NICE: i32 = 15;

/// Parses `--listen`/`--preview=` text: `ADDR:PORT`, `:PORT` or `PORT` (loopback), or empty
/// (loopback, a free port).
pub fn parse_listen(text: &str) -> Result<SocketAddr, ViewError> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let t = text.trim();
    if t.is_empty() {
        return Ok(SocketAddr::new(loopback, 0));
    }
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port = t.strip_prefix(':').unwrap_or(t);
    port.parse::<u16>()
        .map(|p| SocketAddr::new(loopback, p))
        .map_err(|_| ViewError::Listen(text.to_owned()))
}

struct UnitSlot {
    unit: Box<dyn Unit>,
    frames: Mutex<VecDeque<(u64, Arc<Frame>)>>,
    rays: OnceLock<Option<Vec<u8>>>,
    /// The geometry engine for colour at the recording's one colour resolution.
    transformation: OnceLock<Option<crate::geometry::Transformation>>,
}

struct State {
    live: bool,
    loopback: bool,
    units: Vec<UnitSlot>,
    next_id: AtomicU64,
}

/// A running viewer server.
pub struct Viewer {
    server: Arc<Server>,
    addr: SocketAddr,
    workers: Vec<thread::JoinHandle<()>>,
}

impl Viewer {
    /// Binds `addr` and starts answering for `units` (`live`: a running recorder).
    pub fn start(
        addr: SocketAddr,
        units: Vec<Box<dyn Unit>>,
        live: bool,
    ) -> Result<Viewer, ViewError> {
        let server = Server::http(addr).map_err(|e| ViewError::Bind {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| ViewError::Bind {
                addr: addr.to_string(),
                message: "not an IP listener".into(),
            })?;
        let server = Arc::new(server);
        let state = Arc::new(State {
            live,
            loopback: addr.ip().is_loopback(),
            units: units
                .into_iter()
                .map(|unit| UnitSlot {
                    unit,
                    frames: Mutex::new(VecDeque::new()),
                    rays: OnceLock::new(),
                    transformation: OnceLock::new(),
                })
                .collect(),
            next_id: AtomicU64::new(1),
        });
        let workers = (0..WORKERS)
            .map(|_| {
                let server = server.clone();
                let state = state.clone();
                thread::spawn(move || {
                    // Best effort: without it the viewer still works, only at normal priority.
                    let _ = rustix::process::setpriority_process(None, WORKER_NICE);
                    while let Ok(req) = server.recv() {
                        answer(&state, req);
                    }
                })
            })
            .collect();
        Ok(Viewer {
            server,
            addr: bound,
            workers,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL (a wildcard address shown as loopback).
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}/", self.addr.port())
    }

    /// Serves until the process ends.
    pub fn wait(self) {
        for w in self.workers {
            let _ = w.join();
        }
    }

    /// Stops answering and waits for the request threads.
    pub fn stop(self) {
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

type Reply = Response<std::io::Cursor<Vec<u8>>>;

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

fn body(status: u16, content_type: &str, data: Vec<u8>) -> Reply {
    Response::from_data(data)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"))
}

fn json_reply(status: u16, v: &Value) -> Reply {
    body(status, "application/json", v.to_string().into_bytes())
}

fn error(status: u16, message: &str) -> Reply {
    json_reply(status, &json!({ "error": message }))
}

fn answer(state: &State, req: Request) {
    let reply = route(state, &req);
    let reply = if *req.method() == Method::Head {
        // Same status and headers, no body.
        let mut r = Response::from_data(Vec::new()).with_status_code(reply.status_code());
        for h in reply.headers() {
            r.add_header(h.clone());
        }
        r
    } else {
        reply
    };
    // A client that went away is not our failure.
    let _ = req.respond(reply);
}

/// Whether the Host header names this machine's loopback (a page on another site that
/// resolves its name to 127.0.0.1 must not read the recordings).
fn host_is_local(req: &Request) -> bool {
    let Some(h) = req.headers().iter().find(|h| h.field.equiv("Host")) else {
        return true;
    };
    let host = h.value.as_str();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1") || name.starts_with("127.")
}

fn route(state: &State, req: &Request) -> Reply {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return error(405, "only GET and HEAD are served");
    }
    if state.loopback && !host_is_local(req) {
        return error(403, "this viewer answers only to localhost");
    }
    let url = req.url();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    match parts.as_slice() {
        [""] | ["index.html"] => body(200, "text/html; charset=utf-8", INDEX_HTML.into()),
        ["viewer.js"] => body(200, "text/javascript; charset=utf-8", VIEWER_JS.into()),
        ["viewer.css"] => body(200, "text/css; charset=utf-8", VIEWER_CSS.into()),
        ["api", "session"] => json_reply(
            200,
            &json!({
                "live": state.live,
                "units": state.units.iter().map(|u| json!({
                    "name": u.unit.name(),
                    "meta": u.unit.meta(),
                })).collect::<Vec<_>>(),
            }),
        ),
        ["api", "unit", n, rest @ ..] => {
            let Some(slot) = n.parse::<usize>().ok().and_then(|i| state.units.get(i)) else {
                return error(404, "no such unit");
            };
            unit_route(state, slot, rest, query)
        }
        _ => error(404, "not found"),
    }
}

/// Query parameters of the form `a=1&b=2`; `None` when malformed or repeated.
fn params(query: &str) -> Option<Vec<(&str, &str)>> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=')?;
        if out.iter().any(|(o, _)| *o == k) {
            return None;
        }
        out.push((k, v));
    }
    Some(out)
}

fn unit_route(state: &State, slot: &UnitSlot, rest: &[&str], query: &str) -> Reply {
    match rest {
        ["frame"] => {
            let Some(ps) = params(query) else {
                return error(400, "malformed query");
            };
            let mut at = None;
            let mut step = 0i8;
            for (k, v) in ps {
                match k {
                    "t" => match v.parse::<u64>() {
                        Ok(t) => at = Some(t),
                        Err(_) => return error(400, "t must be a device time in µs"),
                    },
                    "step" => match v {
                        "-1" => step = -1,
                        "0" => step = 0,
                        "1" => step = 1,
                        _ => return error(400, "step must be -1, 0 or 1"),
                    },
                    _ => return error(400, "unknown parameter"),
                }
            }
            match slot.unit.frame(at, step) {
                Ok(frame) => {
                    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
                    let mut d = frame.describe();
                    d["id"] = json!(id);
                    if let Ok(mut kept) = slot.frames.lock() {
                        kept.push_back((id, Arc::new(frame)));
                        while kept.len() > KEPT_FRAMES {
                            kept.pop_front();
                        }
                    }
                    json_reply(200, &d)
                }
                Err(e @ UnitError::NoCapture) => error(404, &e.to_string()),
                Err(e @ UnitError::Unreadable) => error(409, &e.to_string()),
                Err(e) => error(500, &e.to_string()),
            }
        }
        ["image", id, file] => {
            let Ok(id) = id.parse::<u64>() else {
                return error(404, "no such capture");
            };
            let frame = slot
                .frames
                .lock()
                .ok()
                .and_then(|kept| kept.iter().find(|(i, _)| *i == id).map(|(_, f)| f.clone()));
            let Some(frame) = frame else {
                return error(404, "capture no longer kept; ask for the frame again");
            };
            let (content_type, data) = match *file {
                "color.jpg" => ("image/jpeg", frame.color_jpeg()),
                "depth.png" => ("image/png", frame.depth_png(slot.unit.depth_mode())),
                "ir.png" => ("image/png", frame.ir_png()),
                "color_in_depth.raw" => {
                    let Some(color) = &frame.capture.color else {
                        return error(404, "this capture has no colour image");
                    };
                    let t = slot.transformation.get_or_init(|| {
                        let res = ColorResolution::from_dimensions(color.width, color.height)?;
                        super::transformation_for(
                            &slot.unit.calibration()?,
                            slot.unit.depth_mode(),
                            res,
                        )
                    });
                    let Some(t) = t else {
                        return error(404, "no colour and depth calibration for this recording");
                    };
                    ("application/octet-stream", frame.color_in_depth(t))
                }
                "depth.raw" => {
                    return match &frame.capture.depth {
                        Some(d) => body(200, "application/octet-stream", d.data.clone()),
                        None => error(404, "this capture has no depth image"),
                    }
                }
                _ => return error(404, "no such image"),
            };
            match data {
                None => error(404, "this capture has no such image"),
                Some(Ok(bytes)) => body(200, content_type, bytes.clone()),
                Some(Err(e)) => error(500, e),
            }
        }
        ["imu"] => json_reply(200, &slot.unit.imu()),
        ["legend.png"] => {
            let Some(range) = super::imaging::DepthRange::for_mode(slot.unit.depth_mode()) else {
                return error(404, "this depth mode has no depth");
            };
            let rgb = super::imaging::depth_legend(range, 256, 8);
            match super::imaging::png_8bit(&rgb, 256, 8) {
                Ok(png) => body(200, "image/png", png),
                Err(e) => error(500, &e.to_string()),
            }
        }
        ["rays"] => {
            let rays = slot.rays.get_or_init(|| {
                let cal = slot.unit.calibration()?;
                let r = super::depth_rays(&cal, slot.unit.depth_mode())?;
                Some(r.iter().flat_map(|f| f.to_le_bytes()).collect())
            });
            match rays {
                Some(r) => body(200, "application/octet-stream", r.clone()),
                None => error(404, "no depth calibration for this recording"),
            }
        }
        _ => error(404, "not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("").unwrap(), "127.0.0.1:0".parse().unwrap());
        assert_eq!(
            parse_listen("8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            parse_listen(":81").unwrap(),
            "127.0.0.1:81".parse().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:9000").unwrap(),
            "0.0.0.0:9000".parse().unwrap()
        );
        assert_eq!(parse_listen("[::1]:5").unwrap(), "[::1]:5".parse().unwrap());
        assert!(parse_listen("localhost:x").is_err());
        assert!(parse_listen("70000").is_err());
    }

    #[test]
    fn query_parsing() {
        assert_eq!(params("t=5&step=1"), Some(vec![("t", "5"), ("step", "1")]));
        assert_eq!(params(""), Some(vec![]));
        assert_eq!(params("t"), None);
        assert_eq!(params("t=1&t=2"), None);
    }
}
