//! A PostgreSQL server of a test's own (initdb into a temporary directory, unix socket only),
//! for tests that do to the server what must not happen to a shared one: freeze it, require TLS.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pg;

pub struct OwnServer {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    frozen: bool,
}

fn bin_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|dir| dir.join("initdb").exists())
}

impl OwnServer {
    /// Starts a server with `settings` (`name = value` lines for postgresql.conf) after `prepare`
    /// has put files into the data directory; `None` (after saying why) where PostgreSQL is not
    /// installed.
    pub fn start(settings: &[String], prepare: impl FnOnce(&Path)) -> Option<Self> {
        pg::database_url()?; // the PostgreSQL suite runs only where a server is available
        let Some(bin) = bin_dir() else {
            pg::skipped("no PostgreSQL server binaries under /usr/lib/postgresql");
            return None;
        };
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        let server = Self::in_new_dir("own", bin, as_postgres);
        server
            .run(
                "initdb",
                &["-D", "data", "-U", "postgres", "-A", "trust", "--no-sync"],
            )
            .then_some(())
            .expect("initdb");
        let data = server.dir.join("data");
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str(&format!(
            "\nlisten_addresses = ''\nunix_socket_directories = '{}'\nfsync = off\n",
            server.dir.display()
        ));
        for line in settings {
            conf.push_str(line);
            conf.push('\n');
        }
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        prepare(&data);
        server.chown(&data);
        assert!(
            server.run(
                "pg_ctl",
                &["-D", "data", "-l", "log", "-w", "-t", "60", "start"]
            ),
            "pg_ctl start: {}",
            std::fs::read_to_string(server.dir.join("log")).unwrap_or_default()
        );
        Some(server)
    }

    /// A server yet to be created, in a new temporary directory of its own.
    fn in_new_dir(kind: &str, bin: PathBuf, as_postgres: bool) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "passkey-links-{kind}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let server = Self {
            dir,
            bin,
            as_postgres,
            frozen: false,
        };
        server.chown(&server.dir);
        server
    }

    fn chown(&self, path: &Path) {
        if self.as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(path)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> bool {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command
            .args(args)
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// libpq key/value settings for this server.
    pub fn config(&self) -> String {
        format!("host={} user=postgres dbname=postgres", self.dir.display())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn postmaster_pid(&self) -> String {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap();
        pid.lines().next().unwrap().trim().to_owned()
    }

    fn signal(&self, signal: &str) {
        let pid = self.postmaster_pid();
        // The backends are the postmaster's children: stop (or continue) them all.
        let _ = Command::new("pkill").args([signal, "-P", &pid]).status();
        let _ = Command::new("kill").args([signal, &pid]).status();
    }

    /// Restarts the server the way a crash does: no shutdown checkpoint, every connection cut,
    /// crash recovery on start.
    pub fn crash_restart(&self) {
        assert!(
            self.run(
                "pg_ctl",
                &[
                    "-D",
                    "data",
                    "-l",
                    "log",
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "60",
                    "restart"
                ]
            ),
            "pg_ctl restart"
        );
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`: a base backup that follows the
    /// primary's WAL), on its own socket directory.
    pub fn standby_of(primary: &OwnServer) -> Self {
        let server = Self::in_new_dir("standby", primary.bin.clone(), primary.as_postgres);
        let source = primary.dir.display().to_string();
        assert!(
            server.run(
                "pg_basebackup",
                &[
                    "-D",
                    "data",
                    "-h",
                    &source,
                    "-U",
                    "postgres",
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync"
                ]
            ),
            "pg_basebackup"
        );
        let data = server.dir.join("data");
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        // Its own socket; and once promoted it has no standby of its own to wait for.
        conf.push_str(&format!(
            "\nunix_socket_directories = '{}'\nsynchronous_standby_names = ''\n",
            server.dir.display()
        ));
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        server.chown(&data);
        assert!(
            server.run(
                "pg_ctl",
                &["-D", "data", "-l", "log", "-w", "-t", "60", "start"]
            ),
            "pg_ctl start (standby): {}",
            std::fs::read_to_string(server.dir.join("log")).unwrap_or_default()
        );
        server
    }

    /// Kills the server as a failing machine would (`pg_ctl -m immediate stop`).
    pub fn kill(&self) {
        assert!(
            self.run("pg_ctl", &["-D", "data", "-m", "immediate", "-w", "stop"]),
            "pg_ctl stop"
        );
    }

    /// Promotes a standby to primary (`pg_ctl promote`), waiting until it accepts writes.
    pub fn promote(&self) {
        assert!(
            self.run("pg_ctl", &["-D", "data", "-w", "-t", "60", "promote"]),
            "pg_ctl promote"
        );
    }

    /// Stops every server process (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&mut self) {
        self.signal("-STOP");
        self.frozen = true;
    }

    /// Lets a frozen server go on.
    pub fn thaw(&mut self) {
        self.signal("-CONT");
        self.frozen = false;
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if self.frozen {
            self.thaw();
        }
        self.run("pg_ctl", &["-D", "data", "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
