//! The Dockerfile ships a small non-root image.

use super::*;

/// The Dockerfile builds in one stage and ships in another, as a non-root user, with the
/// default config where the Deployment's flag points, port 9098, and no HEALTHCHECK; the build
/// context (.dockerignore) holds everything it copies.
#[test]
fn dockerfile_ships_a_small_non_root_image() {
    let dockerfile = read(&deploy().join("Dockerfile"));
    let instructions: Vec<(String, String)> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (word, rest) = l.split_once(' ')?;
            Some((word.to_ascii_uppercase(), rest.trim().to_owned()))
        })
        .collect();
    let stages: Vec<usize> =
        instructions.iter().enumerate().filter(|(_, (word, _))| word == "FROM").map(|(i, _)| i).collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let last = &instructions[*stages.last().unwrap()..];
    let has = |word: &str, rest: &str| last.iter().any(|(w, r)| w == word && r == rest);
    assert!(!instructions.iter().any(|(w, _)| w == "HEALTHCHECK"), "no HEALTHCHECK: the probes check health");
    let user = last.iter().rfind(|(w, _)| w == "USER").map(|(_, r)| r.clone()).expect("a USER in the final stage");
    assert!(
        !["root", "0", "0:0"].contains(&user.as_str()) && user.starts_with(char::is_numeric),
        "a numeric non-root user, for runAsNonRoot: {user}"
    );
    assert!(has("EXPOSE", "9098"));
    // The default config, its spool moved onto the image's volume, owned by the user.
    assert!(has("COPY", "--from=build /out/amrelay.yml /etc/amrelay/amrelay.yml"));
    assert!(has("VOLUME", "/var/lib/amrelay"));
    assert!(dockerfile.contains("path: /var/lib/amrelay/spool.redb"));
    assert!(has("CMD", &format!("[\"{CONFIG_FLAG}\"]")));

    let ignore = read(&repo().join(".dockerignore"));
    for copied in ["Cargo.toml", "Cargo.lock", "build.rs", "src/", "benches/", "examples/", "config/"] {
        assert!(
            ignore.lines().any(|l| l == format!("!{copied}")),
            ".dockerignore lets {copied} into the build context"
        );
    }
}
