//! A browser: headless Chromium driven over WebDriver (fantoccini) by `chromedriver`, for
//! the console test.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hyper_util::client::legacy::connect::HttpConnector;

use crate::programs::{PROGRAM_WAIT, debian_program, fixed_port, try_get};
use crate::support::WAIT;

/// Headless Chromium driven over WebDriver by `chromedriver`, started on a free 127.0.0.1 port
/// in a process group of its own, with a fresh profile. Fails naming the Debian packages
/// (`chromium`, `chromium-driver`) when they are missing.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: std::process::Child,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let chromium = debian_program(&["chromium"], "chromium");
        let chromedriver = debian_program(&["chromedriver"], "chromium-driver");
        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("chromedriver.log");
        for attempt in 1..=3 {
            let port = fixed_port();
            let mut driver = spawn_in_own_group(
                std::process::Command::new(&chromedriver).arg(format!("--port={port}")),
                std::fs::File::create(&log).unwrap(),
            );
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + PROGRAM_WAIT;
            let ready = loop {
                if let Ok(Some(_)) = driver.try_wait() {
                    break false;
                }
                if try_get(&format!("{url}/status")).await.is_some_and(|r| r.status == 200) {
                    break true;
                }
                assert!(
                    Instant::now() < deadline,
                    "chromedriver not ready: {}",
                    std::fs::read_to_string(&log).unwrap()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if !ready {
                eprintln!("chromedriver exited (attempt {attempt}): {}", std::fs::read_to_string(&log).unwrap());
                continue;
            }
            let args = [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("--user-data-dir={}", profile.path().join("profile").display())])
            .collect::<Vec<_>>();
            let capabilities = serde_json::json!({
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            });
            let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
            let mut builder = fantoccini::ClientBuilder::new(HttpConnector::new());
            let connect = builder.capabilities(capabilities).connect(&url);
            let client = tokio::time::timeout(PROGRAM_WAIT, connect)
                .await
                .expect("chromium starts in time")
                .unwrap_or_else(|e| panic!("chromium did not start: {e}\n{}", std::fs::read_to_string(&log).unwrap()));
            return Browser { client, driver, log, _profile: profile };
        }
        panic!("chromedriver did not start; see its logs above");
    }

    /// Runs `test` against a fresh browser, then ends the session and the browser's processes
    /// whatever the test did, and only then reports its panic.
    pub async fn run<F, Fut>(test: F)
    where
        F: FnOnce(fantoccini::Client) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let browser = Browser::start().await;
        let outcome = tokio::spawn(test(browser.client.clone())).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), browser.client.clone().close()).await;
        let log = std::fs::read_to_string(&browser.log).unwrap_or_default();
        drop(browser);
        if let Err(e) = outcome {
            eprintln!("chromedriver log tail:\n{}", &log[log.len().saturating_sub(3000)..]);
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the Chromium processes it started share its process group.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}

fn spawn_in_own_group(command: &mut std::process::Command, log: std::fs::File) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    command
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"))
}

/// Waits until the text of the element `css` satisfies `done`; returns it. Finds the element
/// anew at every try, as the console re-renders its figures.
pub async fn wait_text(client: &fantoccini::Client, css: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = match client.find(fantoccini::Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{css}: text is {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element `css`, finding it again if a re-render replaced it in between.
pub async fn click(client: &fantoccini::Client, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let clicked = match client.find(fantoccini::Locator::Css(css)).await {
            Ok(element) => {
                // To the middle of the window first: the page's sticky header would take a
                // click on an element scrolled just under it.
                let centre = "arguments[0].scrollIntoView({block: 'center'})";
                let _ = client.execute(centre, vec![serde_json::to_value(&element).unwrap_or_default()]).await;
                element.click().await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match clicked {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "cannot click {css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
