//! Which cores the bench's processes run on: the broker on a core of its
//! own, everything else on the others.
//!
//! tansu's storage serves one request at a time, so it needs one core, and
//! the broker-bound scenarios measure Ember against what that core delivers.
//! When the broker shares every core with the system under test, its
//! ceiling (measured alone) is not what it can deliver while the pipeline or
//! ember-ingest and Postgres run beside it: they take turns on its core
//! (BENCHMARKS.md, runs 26 and 39). A broker runs on machines of its own in
//! a deployment; on one machine, the nearest to that is a core of its own,
//! on both sides of each comparison.

use std::io;

/// The cores this process may run on, ascending.
pub fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data, zeroed is the empty set; the kernel
    // writes at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// The broker's core (the last allowed) and everyone else's (the rest);
/// None on a single core, where there is nothing to split.
pub fn split(allowed: &[usize]) -> Option<(usize, Vec<usize>)> {
    let (&broker, rest) = allowed.split_last()?;
    (!rest.is_empty()).then(|| (broker, rest.to_vec()))
}

/// Sets the cores of one thread (a tid; a pid is its main thread).
fn set_thread(tid: u32, cores: &[usize]) -> io::Result<()> {
    // SAFETY: as in `allowed`; CPU_SET ignores cores past CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cores {
            libc::CPU_SET(c, &mut set);
        }
        let tid = libc::pid_t::try_from(tid).map_err(|_| io::ErrorKind::InvalidInput)?;
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets the cores of every thread of `pid`. Threads started later inherit
/// the cores of the thread that starts them, and child processes those of
/// their parent.
pub fn set_process(pid: u32, cores: &[usize]) -> io::Result<()> {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        match set_thread(tid, cores) {
            // A thread that ended since the listing.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            r => r?,
        }
    }
    Ok(())
}

/// The processes whose parent is `ppid` (e.g. a postmaster's backends).
pub fn children(ppid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent(*pid) == Some(ppid))
        .collect()
}

/// The fields of `/proc/<pid>/stat` after the command name (which is in
/// parentheses and may hold spaces): state, ppid, ... (`man 5 proc`, from
/// the third field on).
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(String::from)
            .collect(),
    )
}

/// The parent of `pid`.
pub fn parent(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// The command name of `pid` (`/proc/<pid>/comm`).
pub fn command(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_string())
}

/// The cores the main thread of `pid` may run on, from `/proc/<pid>/status`.
#[cfg(test)]
pub fn cores_of(pid: u32) -> Option<Vec<usize>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    let mut cores = Vec::new();
    for part in list.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => cores.extend(a.parse::<usize>().ok()?..=b.parse().ok()?),
            None => cores.push(part.parse().ok()?),
        }
    }
    Some(cores)
}

/// The broker on its own core and the given processes (with their threads)
/// on the others, for as long as this lives; dropping it gives every one of
/// them all the cores back. `others` are read again then, so that processes
/// found by a function (a postmaster's backends) are caught as they are at
/// the end too.
pub struct Split {
    all: Vec<usize>,
    broker: u32,
    others: Box<dyn Fn() -> Vec<u32>>,
}

impl Split {
    /// Splits the cores between `broker` and `others()`; Err when the
    /// machine has one core or a process cannot be moved (it is then put
    /// back).
    pub fn new(broker: u32, others: Box<dyn Fn() -> Vec<u32>>) -> io::Result<Split> {
        let all = allowed()?;
        let (broker_core, rest) = split(&all).ok_or_else(|| {
            io::Error::new(io::ErrorKind::Unsupported, "one core: nothing to split")
        })?;
        let s = Split {
            all,
            broker,
            others,
        };
        set_process(broker, &[broker_core])?;
        for pid in (s.others)() {
            set_process(pid, &rest)?;
        }
        Ok(s)
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        for pid in std::iter::once(self.broker).chain((self.others)()) {
            if let Err(e) = set_process(pid, &self.all) {
                eprintln!("  (could not give process {pid} all cores back: {e})");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn the_broker_gets_the_last_core_and_the_rest_the_others() {
        assert_eq!(split(&[0, 1]), Some((1, vec![0])));
        assert_eq!(split(&[0, 2, 5, 7]), Some((7, vec![0, 2, 5])));
        assert_eq!(split(&[3]), None);
        assert_eq!(split(&[]), None);
    }

    /// Moves a real child process and reads its cores back from the kernel.
    #[test]
    fn a_process_is_moved_and_given_its_cores_back() {
        let all = allowed().expect("own cores");
        assert!(!all.is_empty());
        let mut child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .expect("sleep");
        let pid = child.id();
        assert_eq!(parent(pid), Some(std::process::id()));
        assert!(children(std::process::id()).contains(&pid));
        assert_eq!(command(pid).as_deref(), Some("sleep"));
        let first = all[0];
        set_process(pid, &[first]).expect("move");
        assert_eq!(cores_of(pid), Some(vec![first]));
        set_process(pid, &all).expect("move back");
        assert_eq!(cores_of(pid), Some(all.clone()));
        if all.len() > 1 {
            let other = Command::new("sleep").arg("30").spawn().expect("sleep");
            let other_pid = other.id();
            let split = Split::new(pid, Box::new(move || vec![other_pid])).expect("split");
            assert_eq!(cores_of(pid), Some(vec![*all.last().expect("a core")]));
            assert_eq!(cores_of(other_pid), Some(all[..all.len() - 1].to_vec()));
            drop(split);
            assert_eq!(cores_of(pid), Some(all.clone()));
            assert_eq!(cores_of(other_pid), Some(all.clone()));
            let mut other = other;
            let _ = other.kill();
            let _ = other.wait();
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(set_process(pid, &all).is_err(), "an ended process");
    }
}
