//! Test containers without a registry: a `busybox-static` rootfs imported as an image,
//! serving a fixed body with busybox httpd. Containers are removed when dropped.

use std::process::Command;

pub const IMAGE: &str = "capstan-test/busybox:1";

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

/// Builds the image once per machine (Debian's busybox-static binary + applet links).
pub fn ensure_image() {
    if docker(&["image", "inspect", IMAGE]).0 {
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("busybox-static is installed (apt-get install busybox-static)");
    let root = tempfile::tempdir().expect("tempdir");
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    for applet in ["sh", "httpd", "mkdir", "echo", "sleep", "cat", "ls"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
    }
    std::fs::create_dir_all(root.path().join("tmp")).expect("mkdir tmp");
    import_rootfs(root.path(), IMAGE);
}

/// Tars a root filesystem directory and imports it as image `tag`.
fn import_rootfs(root: &std::path::Path, tag: &str) {
    let tarball = root.join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--exclude", "./rootfs.tar", "-cf"])
        .arg(&tarball)
        .arg(".")
        .status()
        .expect("tar");
    assert!(status.success(), "tar failed");
    let (ok, text) = docker(&["import", &tarball.display().to_string(), tag]);
    assert!(ok, "docker import of {tag} failed: {text}");
}

/// A running container serving `body` on port 80 at `/`.
pub struct Container {
    pub name: String,
}

impl Container {
    pub fn web(name: &str, body: &str, labels: &[&str]) -> Container {
        Self::web_on(name, body, labels, &[])
    }

    /// As [`Container::web`] with extra `docker run` arguments (network, fixed IP).
    pub fn web_on(name: &str, body: &str, labels: &[&str], extra: &[&str]) -> Container {
        ensure_image();
        let _ = docker(&["rm", "-f", name]);
        let script = format!(
            "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www"
        );
        let mut args = vec!["run", "-d", "--name", name];
        for l in labels {
            args.push("--label");
            args.push(l);
        }
        args.extend(extra.iter().copied());
        args.extend([IMAGE, "sh", "-c", script.as_str()]);
        let (ok, text) = docker(&args);
        assert!(ok, "docker run {name}: {text}");
        Container {
            name: name.to_string(),
        }
    }

    pub fn ip(&self) -> String {
        let (ok, text) = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &self.name,
        ]);
        assert!(ok, "inspect {}: {text}", self.name);
        text
    }

    /// Moves the (stopped) container to another address on `network`.
    pub fn readdress(&self, network: &str, ip: &str) {
        let (ok, text) = docker(&["network", "disconnect", network, &self.name]);
        assert!(ok, "disconnect {}: {text}", self.name);
        let (ok, text) = docker(&["network", "connect", "--ip", ip, network, &self.name]);
        assert!(ok, "connect {}: {text}", self.name);
    }

    pub fn stop(&self) {
        let (ok, text) = docker(&["stop", "-t", "1", &self.name]);
        assert!(ok, "stop {}: {text}", self.name);
    }

    pub fn start(&self) {
        let (ok, text) = docker(&["start", &self.name]);
        assert!(ok, "start {}: {text}", self.name);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// A user-defined bridge network with a fixed subnet (so tests can pin addresses),
/// removed when dropped.
pub struct Network {
    pub name: String,
    /// The first three octets, e.g. `10.213.7`.
    pub prefix: String,
}

impl Network {
    pub fn create(name: &str) -> Network {
        let _ = docker(&["network", "rm", name]);
        let pid = std::process::id();
        for attempt in 0..20u32 {
            let prefix = format!(
                "10.{}.{}",
                200 + (pid + attempt) % 50,
                (pid / 50 + attempt) % 250
            );
            let (ok, _) = docker(&[
                "network",
                "create",
                "--subnet",
                &format!("{prefix}.0/24"),
                name,
            ]);
            if ok {
                return Network {
                    name: name.to_string(),
                    prefix,
                };
            }
        }
        panic!("could not create docker network {name}");
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.name]);
    }
}

pub const ROUTER_IMAGE: &str = "capstan-test/nginx-router:1";

/// A container running a shell script (busybox ash) instead of a web server.
pub fn script(name: &str, script: &str) -> Container {
    ensure_image();
    let _ = docker(&["rm", "-f", name]);
    let (ok, text) = docker(&["run", "-d", "--name", name, IMAGE, "sh", "-c", script]);
    assert!(ok, "docker run {name}: {text}");
    Container {
        name: name.to_string(),
    }
}

/// An NGINX image built from the host's own nginx binary and its libraries (plus
/// busybox for the wait loop), standing in for `nginx:1.27` of the compose file.
pub fn ensure_router_image() {
    if docker(&["image", "inspect", ROUTER_IMAGE]).0 {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let nginx = "/usr/sbin/nginx";
    let mut files = vec![nginx.to_string()];
    let module = "/usr/lib/nginx/modules/ngx_stream_module.so";
    if std::path::Path::new(module).is_file() {
        files.push(module.into());
    }
    for f in files.clone() {
        let out = Command::new("ldd").arg(&f).output().expect("ldd");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
                files.push(path.to_string());
            }
        }
    }
    for f in files {
        let dest = root.path().join(f.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        let real = std::fs::canonicalize(&f).expect("canonicalize");
        std::fs::copy(real, &dest).expect("copy");
    }
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("busybox-static");
    std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    for applet in ["sh", "sleep", "test", "["] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
    }
    for d in ["etc", "var/log/nginx", "var/lib/nginx", "run", "tmp"] {
        std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
    }
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .expect("passwd");
    std::fs::write(
        root.path().join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\n",
    )
    .expect("group");
    import_rootfs(root.path(), ROUTER_IMAGE);
}

/// The compose file's `nginx` service: host network, the agent's NGINX directory mounted
/// at the same path, waiting for the first config, then NGINX in the foreground.
pub fn router(name: &str, nginx_dir: &std::path::Path) -> Container {
    ensure_router_image();
    let _ = docker(&["rm", "-f", name]);
    let dir = nginx_dir.display().to_string();
    let mount = format!("{dir}:{dir}");
    let script = format!(
        "until [ -f {dir}/current/nginx.conf ]; do sleep 0.2; done; exec nginx -g 'daemon off;' -c {dir}/current/nginx.conf"
    );
    let (ok, text) = docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "-v",
        &mount,
        ROUTER_IMAGE,
        "sh",
        "-c",
        &script,
    ]);
    assert!(ok, "docker run {name}: {text}");
    Container {
        name: name.to_string(),
    }
}
