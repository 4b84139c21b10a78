//! A terminal a person would type into: a detached tmux session on its
//! own server socket, driven with send-keys and read with capture-pane.
//! The server is killed when the terminal drops or the test process ends.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::Guarded;

/// A tmux session running one command.
pub struct Terminal {
    socket: String,
    _guard: Guarded,
}

impl Terminal {
    /// Starts `command` (a shell line) in a 200×50 terminal.
    pub fn start(command: &str) -> Self {
        let socket = format!("pc-{:016x}", rand::random::<u64>());
        let guard = Guarded::cleanup_only(&format!("tmux -L {socket} kill-server 2>/dev/null"));
        let st = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "200", "-y", "50", command])
            .status()
            .expect("tmux (run scripts/install-deps.sh)");
        assert!(st.success(), "tmux new-session failed");
        Self {
            socket,
            _guard: guard,
        }
    }

    /// Types `line` and presses Enter.
    pub fn type_line(&self, line: &str) {
        // tmux reads an argument ending in `;` as a command separator.
        let escaped = match line.strip_suffix(';') {
            Some(head) => format!("{head}\\;"),
            None => line.to_string(),
        };
        for args in [vec!["-l", escaped.as_str()], vec!["Enter"]] {
            let st = Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", "-t", "0"])
                .args(&args)
                .status()
                .expect("tmux send-keys");
            assert!(st.success());
        }
    }

    /// What the terminal shows, with its scrollback, long lines joined.
    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "capture-pane",
                "-p",
                "-J",
                "-S",
                "-500",
                "-t",
                "0",
            ])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `cond`; returns the screen.
    pub fn wait_until(&self, what: &str, timeout: Duration, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if cond(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the terminal shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
