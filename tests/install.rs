//! Installing and starting: the binaries as a user gets them (copied out of the build tree, from
//! a release tarball, or through the README's commands) work on their own.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::util::{self, Oracle, TempDir};

/// Runs `bin args` in `cwd` with nothing of the build tree reachable: no depth-engine variables,
/// no loader path, and a `CARGO_TARGET_DIR` that holds nothing.
fn run_alone(bin: &Path, cwd: &Path, args: &[&str]) -> Output {
    let empty = cwd.join("empty-target");
    std::fs::create_dir_all(&empty).unwrap();
    Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .env_remove("FREEK4A_EMULATE")
        .env_remove("FREEK4A_DEPTH_ENGINE")
        .env_remove("LD_LIBRARY_PATH")
        .env("CARGO_TARGET_DIR", &empty)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A one-second default-mode recording holds depth and IR, judged by Microsoft's playback.
fn assert_has_depth(oracle: &Oracle, path: &Path) {
    let v = oracle.playback(path);
    assert_eq!(v["opened"], Value::Bool(true), "{}: {v:#}", path.display());
    assert_eq!(v["config"]["depth_mode"], "NFOV_UNBINNED", "{v:#}");
    for k in ["depth", "ir", "color"] {
        assert!(
            v["images"][k]["count"].as_u64().unwrap_or(0) > 0,
            "{}: no {k} images: {v:#}",
            path.display()
        );
    }
}

/// Issue 11 item 6: a binary copied away from the build tree (as `cargo install` or a release
/// tarball leaves it) emulates with depth on its own, and a missing engine is explained without
/// pointing at a build tree.
#[test]
fn installed_binaries_emulate_depth_on_their_own() {
    let Some(oracle) = Oracle::get() else { return };
    let dir = TempDir::new("installed");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["k4arecorder", "freek4a"] {
        std::fs::copy(util::bin_path(name), bin.join(name)).unwrap();
    }
    assert!(!bin
        .join(freek4a::depthengine::EMULATED_ENGINE_FILE_NAME)
        .exists());

    // Both binaries record with depth from the copies alone.
    for (program, args) in [
        (
            "k4arecorder",
            &["--no-progress", "--emulate", "-l", "1"][..],
        ),
        (
            "freek4a",
            &["record", "--no-progress", "--emulate", "-l", "1"][..],
        ),
    ] {
        let file = format!("{program}.mkv");
        let mut all = args.to_vec();
        all.push(&file);
        let out = run_alone(&bin.join(program), dir.path(), &all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{program}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_has_depth(oracle, &dir.join(&file));
    }

    // An explicit engine that is missing: the loader's reason and what to install, nothing
    // about building.
    let out = run_alone(
        &bin.join("k4arecorder"),
        dir.path(),
        &[
            "--no-progress",
            "--emulate",
            "--depth-engine",
            "/nonexistent/libdepthengine.so.2.0",
            "-l",
            "1",
            "missing-engine.mkv",
        ],
    );
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("/nonexistent/libdepthengine.so.2.0"), "{all}");
    assert!(all.contains("libk4a1.4"), "{all}");
    assert!(!all.contains("cargo"), "{all}");
}

/// The first fenced `sh` blocks of the README, in order.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(util::repo_root().join("README.md")).unwrap();
    readme
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().trim().to_string())
        .collect()
}

/// Issue 11 item 8: the README's first command builds both binaries, records from an emulated
/// unit and runs the toolbox on the file; its second is the suite, the command CI runs.
#[test]
fn readme_first_commands_set_everything_up() {
    let Some(oracle) = Oracle::get() else { return };
    let commands = readme_commands();
    let (first, second) = (&commands[0], &commands[1]);
    assert_eq!(second, "cargo test --workspace --release");
    let ci = std::fs::read_to_string(util::repo_root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim().starts_with(second.as_str())),
        ".ci/run does not run {second}"
    );

    // Run the first command as written, from the repository root, writing into a temporary
    // folder instead of the user's out.mkv, against this test run's target directory.
    let dir = TempDir::new("readme-first");
    let out = dir.join("out.mkv");
    assert!(first.contains(" out.mkv"), "{first}");
    let command = first.replace(" out.mkv", &format!(" {}", out.display()));
    let target = util::profile_dir().parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = Command::new("sh")
        .arg("-c")
        .arg(command.replace("target/release/", &format!("{}/release/", target.display())))
        .current_dir(util::repo_root())
        .env("CARGO_TARGET_DIR", &target)
        .env(
            "PATH",
            format!(
                "{}:{}",
                Path::new(&cargo).parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env_remove("FREEK4A_EMULATE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = format!("{}{}", text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(0), "{first}: {all}");
    assert!(all.contains("Captures:"), "freek4a info did not run: {all}");
    assert_has_depth(oracle, &out);
    for bin in ["k4arecorder", "freek4a"] {
        assert!(
            target.join("release").join(bin).is_file(),
            "{bin} not built by {first}"
        );
    }
}
