//! A headless Chromium driven over the Chrome DevTools protocol, for the dashboard's browser
//! test: starts `chromium --headless=new` with a throw-away profile, opens one page target
//! and speaks CDP to it over its WebSocket. The process is killed when the value is dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A running headless Chromium with one page.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium and opens a blank page. Panics with the install command when the
    /// browser is missing (`scripts/test` installs it).
    pub async fn start() -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                "--remote-debugging-port=0",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium is not installed: apt-get install -y chromium (scripts/test does)");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining stderr so Chromium never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let browser_url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("Chromium printed its DevTools address");
        let port = browser_url
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .expect("port")
            .to_owned();
        let target: Value = reqwest::Client::new()
            .put(format!("http://127.0.0.1:{port}/json/new?about:blank"))
            .send()
            .await
            .expect("new target")
            .json()
            .await
            .expect("target JSON");
        let page_url = target["webSocketDebuggerUrl"]
            .as_str()
            .expect("page websocket");
        let (ws, _) = tokio_tungstenite::connect_async(page_url)
            .await
            .expect("connect to the page");
        let mut browser = Browser {
            child,
            _profile: profile,
            ws,
            next_id: 0,
        };
        browser.call("Page.enable", json!({})).await;
        browser
    }

    /// Sends one command and returns its result (panics on a protocol error).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .expect("send CDP command");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer in 30 s"))
                .expect("socket open")
                .expect("frame");
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(&text).expect("CDP JSON");
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {}", reply["error"]);
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in a fully loaded page.
    pub async fn wait_until(&mut self, what: &str, expression: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let check = format!("document.readyState === 'complete' && !!({expression})");
        loop {
            let ok = self
                .call(
                    "Runtime.evaluate",
                    json!({"expression": check, "returnByValue": true}),
                )
                .await;
            if ok["result"]["value"] == true {
                return;
            }
            if Instant::now() > deadline {
                let text = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await;
                panic!("timed out waiting for {what}; the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&mut self, url: &str) {
        // A mark on the old document: the page has loaded once a document without it has.
        self.eval("window.__hangarLeaving = true").await;
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_until(url, "!window.__hangarLeaving", Duration::from_secs(20))
            .await;
    }

    /// Sets the viewport (CSS pixels); `mobile` also emulates a phone.
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// Writes a PNG of the viewport to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let data = BASE64
            .decode(shot["data"].as_str().expect("png data"))
            .expect("base64 PNG");
        std::fs::create_dir_all(path.parent().expect("folder")).expect("screenshot folder");
        std::fs::write(path, data).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
