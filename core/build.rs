//! Points the embedded UI at `web-static/dist` when it has been built, or at a generated
//! "UI not built" page otherwise, so `cargo build` works without Node installed.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=../web-static/dist");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = manifest.join("../web-static/dist");
    let dir = if dist.join("index.html").is_file() {
        dist.canonicalize().unwrap_or(dist)
    } else {
        let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("ui-missing");
        let _ = std::fs::create_dir_all(&out);
        let _ = std::fs::write(out.join("index.html"), PLACEHOLDER);
        out
    };
    println!("cargo:rustc-env=CAPSTAN_UI_DIR={}", dir.display());
}

const PLACEHOLDER: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Capstan: UI not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2937}
code{background:#f3f4f6;padding:.1rem .3rem;border-radius:.25rem}</style></head>
<body><h1>Capstan core is running, but its web UI was not built</h1>
<p>This binary was compiled without <code>web-static/dist</code>. Build the UI and the core again:</p>
<pre><code>scripts/build-ui &amp;&amp; cargo build --release -p capstan-core</code></pre>
<p>The API works meanwhile: <a href="/api/openapi.json">/api/openapi.json</a>.</p></body></html>
"#;
