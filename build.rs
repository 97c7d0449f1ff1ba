//! Records the compiler version and git revision for `amrelay_build_info`.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=AMRELAY_RUSTC_VERSION={version}");
    if let Some(revision) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
    {
        println!("cargo:rustc-env=AMRELAY_REVISION={}", revision.trim());
    }
    // A path that does not exist makes cargo run this script on every build: in a git worktree
    // `.git` is a file, so ask git where HEAD lives.
    let head = Command::new("git")
        .args(["rev-parse", "--git-path", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|path| path.trim().to_owned())
        .filter(|path| std::path::Path::new(path).exists());
    match head {
        Some(head) => println!("cargo:rerun-if-changed={head}"),
        None => println!("cargo:rerun-if-changed=build.rs"),
    }
}
