//! A small WebDriver client for the desktop app's end-to-end tests: tauri-driver in front of WebKitWebDriver,
//! spoken to over one keep-alive connection (TAURI.md: a new connection per request loses some requests).

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

/// The W3C key under which an element reference travels.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

#[derive(Debug)]
pub struct Session {
    agent: ureq::Agent,
    base: String,
}

impl Session {
    /// Starts the app at `application` through the tauri-driver listening on `port`.
    pub fn start(port: u16, application: &std::path::Path) -> Result<Self> {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
        let caps = json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": application}}}});
        let url = format!("http://127.0.0.1:{port}/session");
        let reply: Value = agent.post(&url).send_json(caps).context("creating a WebDriver session")?.into_json()?;
        let id = reply["value"]["sessionId"].as_str().ok_or_else(|| anyhow!("no session id in {reply}"))?;
        Ok(Self { agent, base: format!("{url}/{id}") })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let req = self.agent.request(method, &url);
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let value: Value = match resp {
            Ok(r) => r.into_json()?,
            Err(ureq::Error::Status(code, r)) => {
                let v: Value = r.into_json().unwrap_or(Value::Null);
                return Err(anyhow!("{method} {path}: HTTP {code}: {v}"));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(value["value"].clone())
    }

    /// The elements matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Result<Vec<String>> {
        let v = self.call("POST", "/elements", Some(json!({"using": "css selector", "value": css})))?;
        Ok(v.as_array().into_iter().flatten().filter_map(|e| e[ELEMENT].as_str().map(str::to_owned)).collect())
    }

    /// Waits up to `within` for an element matching `css`.
    pub fn wait_for(&self, css: &str, within: Duration) -> Result<String> {
        let end = std::time::Instant::now() + within;
        loop {
            if let Some(e) = self.find_all(css)?.into_iter().next() {
                return Ok(e);
            }
            if std::time::Instant::now() > end {
                return Err(anyhow!("no element {css} after {within:?}; the page says: {}", self.page_text()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn text(&self, element: &str) -> Result<String> {
        Ok(self.call("GET", &format!("/element/{element}/text"), None)?.as_str().unwrap_or_default().to_owned())
    }

    pub fn attribute(&self, element: &str, name: &str) -> Result<Option<String>> {
        Ok(self.call("GET", &format!("/element/{element}/attribute/{name}"), None)?.as_str().map(str::to_owned))
    }

    /// A DOM property, such as an input's current `value`.
    pub fn property(&self, element: &str, name: &str) -> Result<Value> {
        self.call("GET", &format!("/element/{element}/property/{name}"), None)
    }

    pub fn click(&self, element: &str) -> Result<()> {
        self.call("POST", &format!("/element/{element}/click"), Some(json!({}))).map(|_| ())
    }

    pub fn send_keys(&self, element: &str, text: &str) -> Result<()> {
        self.call("POST", &format!("/element/{element}/value"), Some(json!({"text": text}))).map(|_| ())
    }

    /// Empties an input, as a user selecting its text and deleting it would.
    pub fn clear(&self, element: &str) -> Result<()> {
        self.call("POST", &format!("/element/{element}/clear"), Some(json!({}))).map(|_| ())
    }

    /// Runs `script` in the page (a function body; `arguments` holds `args`) and returns what it returns.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// The whole page's visible text, for failure messages.
    pub fn page_text(&self) -> String {
        self.find_all("body")
            .ok()
            .and_then(|b| b.into_iter().next())
            .and_then(|b| self.text(&b).ok())
            .unwrap_or_default()
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        use base64::Engine;
        let b64 = self.call("GET", "/screenshot", None)?;
        Ok(base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default())?)
    }

    pub fn end(self) {
        let _ = self.agent.delete(&self.base).call();
    }
}
