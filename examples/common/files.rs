//! Files at the edges, the way `cp` and `rsync` users expect them: an input must be a regular
//! file (a FIFO or a device would block or never end); an output appears whole or not at all.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use halfclose::io::FromStd;
use halfclose::server::Source;
use halfclose::{Error, client, server};

/// A copy of `e` to keep while the original travels on (an OS error is copied exactly).
fn copy(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// `path`'s metadata if it is a regular file (symlinks followed); refuses directories, FIFOs,
/// sockets and devices, which would block, fail late or never end.
pub fn regular_file(path: &Path) -> Result<fs::Metadata, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.is_file() {
        return Ok(meta);
    }
    let what = if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(format!("cannot read {}: {what}", path.display()))
}

/// Open `path` for reading if it is a regular file, checked again on the open file (it may
/// have been swapped in between).
pub fn open_input(path: &Path) -> Result<File, String> {
    regular_file(path)?;
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        Ok(_) => Err(format!(
            "cannot read {}: not a regular file",
            path.display()
        )),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Whether `a` and `b` name the same file (through symlinks and hard links too).
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(a), Ok(b)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        // No inode numbers in std here: compare what can be compared.
        a.len() == b.len()
            && a.modified().ok() == b.modified().ok()
            && a.file_type() == b.file_type()
    }
}

/// Where a failed run keeps what arrived: `NAME.partial` beside `NAME`.
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

/// An output file written all-or-nothing: the bytes go to a fresh temporary file beside the
/// target; [`commit`](Output::commit) renames it over the target after a successful transfer,
/// [`abandon`](Output::abandon) keeps it as `NAME.partial`. The target is not touched before
/// success.
///
/// Writes count the bytes and keep the first error with the OS's own words (the library's
/// `Error::Sink` carries only its kind).
pub struct Output {
    target: PathBuf,
    /// The temporary file; `None` when the target is a character device or a FIFO (such as
    /// `/dev/null`), which is written directly: it has no contents to keep or replace.
    temp: Option<PathBuf>,
    file: File,
    written: u64,
    error: Option<io::Error>,
}

impl Output {
    /// Check `target` (not a directory, not one of `inputs`) and create the temporary file.
    pub fn create(target: &Path, inputs: &[&Path]) -> Result<Output, String> {
        let shown = target.display();
        let Some(name) = target.file_name() else {
            return Err(format!("cannot write {shown}: not a file name"));
        };
        if let Ok(meta) = fs::metadata(target) {
            let kind = meta.file_type();
            if kind.is_dir() {
                return Err(format!("cannot write {shown}: it is a directory"));
            }
            if !kind.is_file() {
                return Output::direct(target, &kind);
            }
        }
        let partial = partial_path(target);
        for input in inputs {
            if same_file(input, target) || same_file(input, &partial) {
                return Err(format!(
                    "refusing to write {shown}: it is the input {}",
                    input.display()
                ));
            }
        }
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // create_new: never open (and truncate) something that is already there.
        let mut attempt = 0;
        let (temp, file) = loop {
            let mut temp_name = std::ffi::OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(".{}.{attempt}.tmp", std::process::id()));
            let temp = dir.join(temp_name);
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => break (temp, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(e) => return Err(format!("cannot write {shown}: {e}")),
            }
        };
        Ok(Output {
            target: target.to_path_buf(),
            temp: Some(temp),
            file,
            written: 0,
            error: None,
        })
    }

    /// A character device or FIFO, written as it is.
    fn direct(target: &Path, kind: &fs::FileType) -> Result<Output, String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if !(kind.is_char_device() || kind.is_fifo()) {
                return Err(format!(
                    "cannot write {}: not a regular file, character device or FIFO",
                    target.display()
                ));
            }
        }
        let _ = kind;
        let file = OpenOptions::new()
            .write(true)
            .open(target)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        Ok(Output {
            target: target.to_path_buf(),
            temp: None,
            file,
            written: 0,
            error: None,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The first write error, in the OS's words, naming the target.
    pub fn error(&self) -> Option<String> {
        self.error
            .as_ref()
            .map(|e| format!("cannot write {}: {e}", self.target.display()))
    }

    /// The transfer succeeded: flush to disk, then put the file in place.
    pub fn commit(mut self) -> Result<u64, String> {
        // A device or FIFO cannot be synced (EINVAL): only files are.
        let synced = match self.temp {
            Some(_) => self.file.flush().and_then(|()| self.file.sync_all()),
            None => self.file.flush(),
        };
        if let Err(e) = synced {
            let e = format!("cannot write {}: {e}", self.target.display());
            return Err(format!("{e}; {}", self.abandon()));
        }
        let Some(temp) = &self.temp else {
            return Ok(self.written);
        };
        match fs::rename(temp, &self.target) {
            Ok(()) => Ok(self.written),
            Err(e) => {
                let e = format!("cannot write {}: {e}", self.target.display());
                Err(format!("{e}; {}", self.abandon()))
            }
        }
    }

    /// The transfer failed: keep what arrived as `NAME.partial` and say so (the target is as it
    /// was). Returns the clause for the error line.
    pub fn abandon(self) -> String {
        let target = self.target.display().to_string();
        let Some(temp) = &self.temp else {
            return format!("{} bytes written to {target}", self.written);
        };
        if self.written == 0 {
            let _ = fs::remove_file(temp);
            return format!("nothing received, {target} not written");
        }
        let partial = partial_path(&self.target);
        match fs::rename(temp, &partial) {
            Ok(()) => format!(
                "{} bytes kept in {} ({target} not written)",
                self.written,
                partial.display()
            ),
            Err(e) => format!(
                "{} bytes kept in {} (cannot rename it to {}: {e})",
                self.written,
                temp.display(),
                partial.display()
            ),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.write(buf) {
            Ok(n) => {
                self.written += n as u64;
                Ok(n)
            }
            Err(e) => {
                if self.error.is_none() && e.kind() != io::ErrorKind::Interrupted {
                    self.error = Some(copy(&e));
                }
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush().inspect_err(|e| {
            if self.error.is_none() {
                self.error = Some(copy(e));
            }
        })
    }
}

/// The last read error of an [`Input`], kept for the error line (shared with a reading thread
/// when the source is threaded).
pub type ErrorSlot = Arc<Mutex<Option<io::Error>>>;

/// The guarded value, even if a thread panicked while holding it (it holds plain data).
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A regular file served to each connection afresh, keeping read errors in the OS's words
/// (the library's `Error::Source` carries only the kind).
pub struct Input {
    path: PathBuf,
    error: ErrorSlot,
}

impl Input {
    /// A source for `path`, which must be a regular file now; returns it and its length.
    pub fn new(path: &Path) -> Result<(Input, u64), String> {
        let len = open_input(path)?
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        let input = Input {
            path: path.to_path_buf(),
            error: ErrorSlot::default(),
        };
        Ok((input, len))
    }

    /// Where read errors are kept.
    pub fn errors(&self) -> ErrorSlot {
        self.error.clone()
    }

    /// The last read error, in the OS's words, naming the file.
    pub fn error(slot: &ErrorSlot, path: &Path) -> Option<String> {
        locked(slot)
            .as_ref()
            .map(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// A reader that keeps its last error in an [`ErrorSlot`].
pub struct Recorded {
    file: File,
    error: ErrorSlot,
}

impl Read for Recorded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                *locked(&self.error) = Some(copy(e));
            }
        })
    }
}

impl Source for Input {
    type Reader = FromStd<Recorded>;

    fn open(&mut self) -> Result<Self::Reader, embedded_io::ErrorKind> {
        let opened = fs::metadata(&self.path).and_then(|meta| {
            if meta.is_file() {
                File::open(&self.path)
            } else {
                Err(io::Error::other("not a regular file"))
            }
        });
        match opened {
            Ok(file) => Ok(FromStd(Recorded {
                file,
                error: self.error.clone(),
            })),
            Err(e) => {
                let kind = e.kind().into();
                *locked(&self.error) = Some(e);
                Err(kind)
            }
        }
    }
}

/// An [`Output`] handed to a writing thread (`halfclose::io::ThreadedSink`) and taken back
/// once that thread is done, to commit or abandon it.
#[derive(Clone)]
pub struct SharedOutput(Arc<Mutex<Output>>);

impl SharedOutput {
    /// Share `output`.
    pub fn new(output: Output) -> Self {
        SharedOutput(Arc::new(Mutex::new(output)))
    }

    /// The first write error, as [`Output::error`].
    pub fn error(&self) -> Option<String> {
        locked(&self.0).error()
    }

    /// Bytes written so far, as [`Output::written`] (the client may have handed over more: the
    /// writing thread holds them).
    pub fn written(&self) -> u64 {
        locked(&self.0).written()
    }

    /// The output back, once every other holder (the writing thread) has let it go.
    pub fn into_inner(self) -> Result<Output, String> {
        let output = Arc::try_unwrap(self.0)
            .map_err(|_| "the writing thread still holds the output".to_string())?;
        Ok(output.into_inner().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for SharedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        locked(&self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        locked(&self.0).flush()
    }
}

/// How a transfer from an [`Input`] to a [`SharedOutput`] ended, once both sides have a result
/// (`ended` is the run's own error, such as a stalled clock): the two reports, with the output
/// committed in place; or the error in words, the root cause first (a disk error, not the reset
/// it caused on the other side), with the output abandoned. The writing thread must be done
/// (the client dropped).
pub fn settle(
    ended: Result<(), String>,
    served: Option<Result<server::Report, Error>>,
    fetched: Option<Result<client::Report, Error>>,
    (input, read_errors): (&Path, &ErrorSlot),
    output: SharedOutput,
) -> Result<(server::Report, client::Report), String> {
    let result = match (ended, served, fetched) {
        (Err(e), ..) => Err(e),
        (Ok(()), Some(Ok(served)), Some(Ok(fetched))) => Ok((served, fetched)),
        // What reached the file, not what the client handed to the writing thread.
        (Ok(()), _, Some(Err(e @ Error::Sink { .. }))) => {
            Err(output.error().map_or(e.to_string(), |os| {
                format!("{os} after {} bytes", output.written())
            }))
        }
        (Ok(()), Some(Err(e @ Error::Source { .. })), _) => Err(Input::error(read_errors, input)
            .map_or(e.to_string(), |os| {
                format!("{os} after {} bytes", e.bytes())
            })),
        (Ok(()), _, Some(Err(e))) => Err(format!("client: {e}")),
        (Ok(()), Some(Err(e)), _) => Err(format!("server: {e}")),
        (Ok(()), None, _) | (Ok(()), _, None) => Err("ended without a result".to_string()),
    };
    let output = output.into_inner()?;
    match result {
        Ok(reports) => output.commit().map(|_| reports),
        Err(e) => Err(format!("{e}; {}", output.abandon())),
    }
}
