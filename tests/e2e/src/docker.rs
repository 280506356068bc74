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

    /// As [`Container::web_on`], created but not started (`docker create`): to start
    /// later, e.g. on an address another container holds now.
    pub fn web_created(name: &str, body: &str, extra: &[&str]) -> Container {
        ensure_image();
        let _ = docker(&["rm", "-f", name]);
        let script = format!(
            "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www"
        );
        let mut args = vec!["create", "--name", name];
        args.extend(extra.iter().copied());
        args.extend([IMAGE, "sh", "-c", script.as_str()]);
        let (ok, text) = docker(&args);
        assert!(ok, "docker create {name}: {text}");
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
    let libs = shared_libs(&files);
    files.extend(libs);
    stage_rootfs(root.path(), &files, &["sh", "sleep", "test", "["]);
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

/// `docker run` flags for a service with `privileged: true`: `--privileged` where this
/// daemon grants it; otherwise (a sandbox whose bounding set lacks a capability) every
/// capability it has, unconfined, as `scripts/test-packaging` does.
pub fn privileged_flags() -> Vec<String> {
    ensure_image();
    if docker(&["run", "--rm", "--privileged", IMAGE, "sh", "-c", "exit 0"]).0 {
        return vec!["--privileged".into()];
    }
    const CAPS: &[&str] = &[
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapBnd");
    let mut flags: Vec<String> = [
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--cap-add",
        "ALL",
    ]
    .map(String::from)
    .to_vec();
    for (i, cap) in CAPS.iter().enumerate() {
        if bnd >> i & 1 == 0 {
            flags.push("--cap-drop".into());
            flags.push((*cap).into());
        }
    }
    let mut probe: Vec<&str> = vec!["run", "--rm"];
    probe.extend(flags.iter().map(String::as_str));
    probe.extend([IMAGE, "sh", "-c", "exit 0"]);
    let (ok, text) = docker(&probe);
    assert!(ok, "cannot run a container with {flags:?}: {text}");
    flags
}

/// A local image, removed when dropped.
pub struct Image {
    pub tag: String,
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.tag]);
    }
}

/// Dangling images of `Dockerfile` build stages (`LABEL io.capstan.stage=build`).
fn build_stage_images() -> Vec<String> {
    let (_, text) = docker(&[
        "images",
        "-q",
        "--no-trunc",
        "--filter",
        "dangling=true",
        "--filter",
        "label=io.capstan.stage=build",
    ]);
    text.lines().map(str::to_string).collect()
}

/// The shared libraries (absolute paths, as `ldd` lists them) the executables link.
fn shared_libs(executables: &[String]) -> Vec<String> {
    let mut libs = Vec::new();
    for exe in executables {
        let out = Command::new("ldd").arg(exe).output().expect("ldd");
        libs.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
                .map(str::to_string),
        );
    }
    libs
}

/// Copies `files` from this host into `root` at the same paths (links resolved), and
/// installs busybox-static as `/bin/busybox` with the given applets linked to it.
fn stage_rootfs(root: &std::path::Path, files: &[String], applets: &[&str]) {
    for f in files {
        let dest = root.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        let real = std::fs::canonicalize(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        std::fs::copy(real, &dest).expect("copy");
    }
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("busybox-static is installed (apt-get install busybox-static)");
    std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    for applet in applets {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
    }
}

/// Base image for `agent/Dockerfile` without a registry: busybox (shell, `install`),
/// the shared libraries `agent_bin` links (copied from this host) and the host's CA
/// bundle. Tagged by a hash of that library list, so a binary linking something new
/// gets a new base.
fn ensure_agent_base_image(agent_bin: &std::path::Path) -> String {
    // coreutils `install` (the build stage runs it; busybox-static has no such applet)
    // with the libraries it and the agent link.
    let install = "/usr/bin/install";
    let mut libs: Vec<String> = vec![install.to_string()];
    libs.extend(shared_libs(&[
        agent_bin.display().to_string(),
        install.to_string(),
    ]));
    libs.sort();
    libs.dedup();
    let hash = libs.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, l| {
        l.bytes()
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    });
    let tag = format!("capstan-test/agent-base:{:08x}", hash as u32);
    if docker(&["image", "inspect", &tag]).0 {
        return tag;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let mut files = libs.clone();
    files.push("/etc/ssl/certs/ca-certificates.crt".to_string());
    stage_rootfs(
        root.path(),
        &files,
        &["sh", "test", "[", "cat", "ls", "sleep"],
    );
    for d in ["tmp", "etc", "var/lib", "usr/bin"] {
        std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
    }
    std::fs::write(root.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").expect("passwd");
    import_rootfs(root.path(), &tag);
    tag
}

/// Builds the shipped `agent/Dockerfile` around a prebuilt `agent_bin` (its
/// `AGENT_BIN` build argument), on a local base image (no registry here).
pub fn build_agent_image(agent_bin: &std::path::Path, tag: &str) -> Image {
    let base = ensure_agent_base_image(agent_bin);
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // A context of its own holding just the binary and the Dockerfile: the workspace's
    // .dockerignore admits only target/release binaries, the e2e binaries may be debug.
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::copy(agent_bin, ctx.path().join("capstan-agent")).expect("copy agent");
    std::fs::create_dir_all(ctx.path().join("agent")).expect("mkdir");
    let dockerfile = ctx.path().join("agent/Dockerfile");
    std::fs::copy(workspace.join("agent/Dockerfile"), &dockerfile).expect("copy Dockerfile");
    let stages_before = build_stage_images();
    let (ok, text) = docker(&[
        "build",
        "-q",
        "--force-rm",
        "-f",
        &dockerfile.display().to_string(),
        "-t",
        tag,
        "--build-arg",
        "AGENT_BIN=capstan-agent",
        "--build-arg",
        &format!("BUILD_IMAGE={base}"),
        "--build-arg",
        &format!("BASE_IMAGE={base}"),
        &ctx.path().display().to_string(),
    ]);
    // The build stage stays behind as a dangling image: remove the one this build made.
    for id in build_stage_images() {
        if !stages_before.contains(&id) {
            let _ = docker(&["rmi", &id]);
        }
    }
    assert!(ok, "docker build -f agent/Dockerfile failed: {text}");
    Image {
        tag: tag.to_string(),
    }
}

/// `docker run -d --name NAME ARGS…` (image and command included in `args`); the
/// container is removed when dropped.
pub fn run(name: &str, args: &[String]) -> Container {
    let _ = docker(&["rm", "-f", name]);
    let mut all: Vec<&str> = vec!["run", "-d", "--name", name];
    all.extend(args.iter().map(String::as_str));
    let (ok, text) = docker(&all);
    assert!(ok, "docker run {name}: {text}");
    Container {
        name: name.to_string(),
    }
}

/// How many times Docker restarted the container (its restart policy).
pub fn restart_count(name: &str) -> u64 {
    let (ok, text) = docker(&["inspect", "-f", "{{.RestartCount}}", name]);
    assert!(ok, "inspect {name}: {text}");
    text.parse()
        .unwrap_or_else(|_| panic!("restart count of {name}: {text}"))
}

/// The container's log (stdout and stderr), for failure messages.
pub fn logs(name: &str) -> String {
    docker(&["logs", "--tail", "50", name]).1
}
