//! A real nginx on 127.0.0.1 serving a temporary directory, for the distribution tests and the
//! install benchmark. It accepts PUT (WebDAV module) like a release server would, answers 500
//! for tarballs under `/tar500/`, and throttles everything under `/slow/` (a copy of `/`).
//!
//! Shared by the tests and `cargo xtask bench`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NGINX: &str = "/usr/sbin/nginx";

pub struct Nginx {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl Nginx {
    /// Starts nginx with its configuration, logs, pid file and document root in `dir`
    /// (document root `dir/www`).
    pub fn start(dir: &Path) -> std::io::Result<Nginx> {
        if !Path::new(NGINX).exists() {
            return Err(std::io::Error::other(
                "nginx is not installed: `apt-get install nginx-light` (it must have the dav module)",
            ));
        }
        let www = dir.join("www");
        std::fs::create_dir_all(&www)?;
        let mut last_error = None;
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let conf = dir.join("nginx.conf");
            std::fs::write(&conf, config(dir, &www, port))?;
            let child = Command::new(NGINX)
                .arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let mut nginx = Nginx {
                child,
                dir: dir.to_owned(),
                port,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(nginx);
                }
                if let Ok(Some(_)) = nginx.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            last_error = Some(std::io::Error::other(format!(
                "nginx did not start on port {port}: {log}"
            )));
        }
        Err(last_error.unwrap())
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn www(&self) -> PathBuf {
        self.dir.join("www")
    }

    /// The access log: one line per request, `METHOD PATH STATUS BYTES` (the tests read it).
    #[allow(dead_code)]
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, www: &Path, port: u16) -> String {
    let dir = dir.display();
    let www = www.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 128; }}
http {{
    log_format plain '$request_method $uri $status $body_bytes_sent';
    access_log {dir}/access.log plain;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 0;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
        location ~ ^/tar500/.*\.tar\.gz$ {{
            return 500;
        }}
        location /tar500/ {{
            alias {www}/;
        }}
        location /slow/ {{
            alias {www}/;
            limit_rate 64k;
        }}
    }}
}}
"#
    )
}
