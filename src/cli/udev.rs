//! The udev rules (`udev/70-freek4a.rules`, embedded) and their installation.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The rules file's name.
pub const RULES_FILE_NAME: &str = "70-freek4a.rules";

/// The rules, as shipped in `udev/70-freek4a.rules`.
pub const RULES: &str = include_str!("../../udev/70-freek4a.rules");

/// Where `install` writes by default.
pub const SYSTEM_RULES_DIR: &str = "/etc/udev/rules.d";

/// Why installing the rules failed.
#[derive(Debug, thiserror::Error)]
pub enum UdevError {
    /// Writing needs root.
    #[error(
        "cannot write {path}: permission denied (run as root, e.g. `sudo freek4a udev install`)"
    )]
    PermissionDenied {
        /// The file we tried to write.
        path: PathBuf,
    },
    /// The target directory does not exist.
    #[error("cannot write {path}: the directory does not exist (is udev installed?)")]
    NoDirectory {
        /// The file we tried to write.
        path: PathBuf,
    },
    /// Any other write failure.
    #[error("cannot write {path}")]
    Write {
        /// The file we tried to write.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `udevadm` ran and failed.
    #[error("`{command}` failed ({status}); the rules are written but not yet active: run it as root and re-plug the device")]
    Reload {
        /// The command line.
        command: String,
        /// Its exit status or spawn error.
        status: String,
    },
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// The file written.
    pub path: PathBuf,
    /// The `udevadm` used to reload, or `None` when no reload was done (not asked, or not found).
    pub reloaded_with: Option<PathBuf>,
}

/// Writes [`RULES`] into `dir` (default [`SYSTEM_RULES_DIR`]) and, when `reload` is set and
/// `udevadm` can be found, runs `udevadm control --reload-rules` and `udevadm trigger`.
pub fn install(dir: Option<&Path>, reload: bool) -> Result<InstallReport, UdevError> {
    let dir = dir.unwrap_or(Path::new(SYSTEM_RULES_DIR));
    let path = dir.join(RULES_FILE_NAME);
    if let Err(source) = std::fs::write(&path, RULES) {
        return Err(match source.kind() {
            io::ErrorKind::PermissionDenied => UdevError::PermissionDenied { path },
            io::ErrorKind::NotFound => UdevError::NoDirectory { path },
            _ => UdevError::Write { path, source },
        });
    }
    let udevadm = if reload { find_udevadm() } else { None };
    if let Some(udevadm) = &udevadm {
        for args in [&["control", "--reload-rules"][..], &["trigger"][..]] {
            let command = format!("{} {}", udevadm.display(), args.join(" "));
            let status = Command::new(udevadm).args(args).status();
            match status {
                Ok(s) if s.success() => {}
                Ok(s) => {
                    return Err(UdevError::Reload {
                        command,
                        status: s.to_string(),
                    })
                }
                Err(e) => {
                    return Err(UdevError::Reload {
                        command,
                        status: e.to_string(),
                    })
                }
            }
        }
    }
    Ok(InstallReport {
        path,
        reloaded_with: udevadm,
    })
}

/// Looks for `udevadm` on `PATH` and in the sbin directories a non-root `PATH` often lacks.
pub fn find_udevadm() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join("udevadm"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_cover_all_five_functions_without_world_access() {
        for pid in ["097a", "097b", "097c", "097d", "097e"] {
            let rule = format!(
                "ATTR{{idProduct}}==\"{pid}\", MODE=\"0660\", GROUP=\"plugdev\", TAG+=\"uaccess\""
            );
            assert!(RULES.contains(&rule), "{pid}");
        }
        assert!(!RULES.contains("0666"));
        assert!(!RULES.contains("!=="));
        assert!(RULES.contains("ATTR{idVendor}!=\"045e\", GOTO=\"freek4a_rules_end\""));
        assert!(RULES.trim_end().ends_with("LABEL=\"freek4a_rules_end\""));
    }

    #[test]
    fn install_into_a_directory() {
        let dir = std::env::temp_dir().join(format!("freek4a-udev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let report = install(Some(&dir), false).unwrap();
        assert_eq!(report.path, dir.join(RULES_FILE_NAME));
        assert_eq!(report.reloaded_with, None);
        assert_eq!(std::fs::read_to_string(&report.path).unwrap(), RULES);
        std::fs::remove_dir_all(&dir).unwrap();

        let missing = dir.join("no/such/dir");
        assert!(matches!(
            install(Some(&missing), false),
            Err(UdevError::NoDirectory { .. })
        ));
    }
}
