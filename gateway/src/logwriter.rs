//! The log sink: formatted lines are appended to a shared buffer (one
//! uncontended lock per line, no allocation, no thread wake-up) and a
//! background thread writes the buffer out in batches, every few
//! milliseconds or as soon as it holds a lot. No line is dropped: when the
//! output cannot keep up and the buffer reaches its cap, loggers wait for
//! the writer (back-pressure) instead of discarding.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Write out at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Wake the writer early past this many buffered bytes.
const WAKE_AT: usize = 256 * 1024;
/// Loggers wait past this many buffered bytes.
const CAP: usize = 16 * 1024 * 1024;

struct State {
    buf: Vec<u8>,
    closed: bool,
}

struct Inner {
    state: Mutex<State>,
    /// Loggers wait past this many buffered bytes.
    cap: usize,
    /// Signals the writer (data past WAKE_AT, or closing).
    wake: Condvar,
    /// Signals waiting loggers that the buffer was drained.
    drained: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A `MakeWriter` for tracing-subscriber.
#[derive(Clone)]
pub struct BatchWriter {
    inner: Arc<Inner>,
}

/// Flushes what is buffered and stops the writer thread when dropped.
pub struct FlushGuard {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl BatchWriter {
    /// A writer to `out`, with its flush guard.
    pub fn new<W: Write + Send + 'static>(out: W) -> (Self, FlushGuard) {
        Self::with_cap(out, CAP)
    }

    /// Like [`BatchWriter::new`], with loggers waiting past `cap` buffered
    /// bytes.
    pub fn with_cap<W: Write + Send + 'static>(mut out: W, cap: usize) -> (Self, FlushGuard) {
        let inner = Arc::new(Inner {
            cap,
            state: Mutex::new(State {
                buf: Vec::with_capacity(64 * 1024),
                closed: false,
            }),
            wake: Condvar::new(),
            drained: Condvar::new(),
        });
        let i = inner.clone();
        let thread = std::thread::Builder::new()
            .name("portcullis-log".into())
            .spawn(move || {
                let mut spare = Vec::with_capacity(64 * 1024);
                loop {
                    let closed = {
                        let mut st = lock(&i.state);
                        if st.buf.is_empty() && !st.closed {
                            st = match i.wake.wait_timeout(st, FLUSH_EVERY) {
                                Ok((g, _)) => g,
                                Err(p) => p.into_inner().0,
                            };
                        }
                        std::mem::swap(&mut st.buf, &mut spare);
                        i.drained.notify_all();
                        st.closed
                    };
                    if !spare.is_empty() {
                        let _ = out.write_all(&spare);
                        let _ = out.flush();
                        spare.clear();
                    }
                    if closed && lock(&i.state).buf.is_empty() {
                        return;
                    }
                }
            })
            .ok();
        (
            Self {
                inner: inner.clone(),
            },
            FlushGuard { inner, thread },
        )
    }
}

/// One event's writer: holds the buffer lock while the line is formatted.
pub struct LineWriter<'a> {
    state: MutexGuard<'a, State>,
    wake: &'a Condvar,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.state.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if self.state.buf.len() >= WAKE_AT {
            self.wake.notify_one();
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        let mut st = lock(&self.inner.state);
        while st.buf.len() >= self.inner.cap && !st.closed {
            self.inner.wake.notify_one();
            st = match self.inner.drained.wait(st) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
        }
        LineWriter {
            state: st,
            wake: &self.inner.wake,
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        lock(&self.inner.state).closed = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(d);
            Ok(d.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A sink slower than the loggers.
    #[derive(Clone, Default)]
    struct Slow(Sink);

    impl Write for Slow {
        fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_micros(200));
            self.0.write(d)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Every line arrives, in order, from several threads; the guard
    /// flushes the rest.
    #[test]
    fn no_line_is_lost() {
        let sink = Sink::default();
        let (w, guard) = BatchWriter::new(sink.clone());
        lines_arrive(w, guard, &sink);
    }

    /// With a small buffer and a slow output, loggers wait instead of
    /// dropping lines.
    #[test]
    fn a_full_buffer_makes_loggers_wait_not_drop() {
        let sink = Sink::default();
        let (w, guard) = BatchWriter::with_cap(Slow(sink.clone()), 256);
        lines_arrive(w, guard, &sink);
    }

    fn lines_arrive(w: BatchWriter, guard: FlushGuard, sink: &Sink) {
        std::thread::scope(|s| {
            for t in 0..4 {
                let w = w.clone();
                s.spawn(move || {
                    for i in 0..5000 {
                        writeln!(w.make_writer(), "t{t} line {i}").unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 20_000);
        for t in 0..4 {
            let mine: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            assert_eq!(mine.len(), 5000);
            assert_eq!(mine[4999], format!("t{t} line 4999"));
        }
    }
}
