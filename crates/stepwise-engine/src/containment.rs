//! Keeping everything a step starts within the supervisor's reach, so that ending an
//! attempt kills all of it: also the descendants that left the child's process group
//! or session (`setsid`, a daemonising helper), which `killpg` misses and which would
//! otherwise keep the attempt's pipes open and outlive its lease.
//!
//! Two nets, both cast on every attempt:
//! - the supervisor is a child subreaper (`PR_SET_CHILD_SUBREAPER`): a descendant
//!   orphaned by its parent is re-parented to the supervisor rather than to init, so
//!   every process the step started stays in the supervisor's process tree, found by
//!   the parent chain in `/proc/PID/stat`, however it detached;
//! - where the cgroup v2 the worker runs in is writable, the child is born in a
//!   cgroup of its own beneath it (`stepwise-<supervisor pid>-<nanos>`), which
//!   `cgroup.kill` empties in one stroke, even of a process forking at that moment.
//!
//! Where neither is available (another OS, no `/proc`), the supervisor still kills
//! the child's process group as before.

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a kill waits for the step's processes to be gone before giving up on
/// stragglers (a process in uninterruptible sleep dies when its I/O returns).
const KILL_PATIENCE: Duration = Duration::from_secs(5);

/// Makes orphaned descendants of this process its children (see the module docs).
/// Only for a process that exists to supervise: it must reap what it inherits.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            eprintln!("stepwise supervisor: cannot become a child subreaper: {e}");
        }
    }
}

/// A cgroup v2 made for one attempt's processes.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    /// The cgroup this process came from, and returns to once the child is born.
    home: PathBuf,
    /// This process could not leave: kill everything in it but this process.
    holds_self: bool,
}

impl Cgroup {
    /// Creates the attempt's cgroup under this process's own and moves this process
    /// into it, so that the child started next is born inside, with no moment in
    /// which it could fork outside. Call [`Cgroup::leave`] once the child is started.
    /// `None` where there is no writable cgroup v2.
    pub fn enter() -> Option<Cgroup> {
        let home = own_cgroup_dir()?;
        let me = std::process::id();
        // Unique even beside another pid namespace's supervisor with the same pid.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = home.join(format!("stepwise-{me}-{nanos}"));
        std::fs::create_dir(&dir).ok()?;
        if std::fs::write(dir.join("cgroup.procs"), me.to_string()).is_err() {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Cgroup {
            dir,
            home,
            holds_self: true,
        })
    }

    /// Moves this process back out, leaving the child (and whatever it starts) in.
    pub fn leave(&mut self) {
        let me = std::process::id().to_string();
        self.holds_self = std::fs::write(self.home.join("cgroup.procs"), me).is_err();
    }

    /// The processes in the cgroup, this one excepted.
    fn members(&self) -> Vec<Pid> {
        let me = std::process::id() as i32;
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .filter(|&pid| pid != me)
            .map(Pid::from_raw)
            .collect()
    }

    /// Sends SIGKILL to every process in the cgroup (but this one).
    fn kill(&self) {
        if !self.holds_self && std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        // Kernels before 5.14 have no cgroup.kill: one by one, until it is empty.
        for pid in self.members() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }

    fn is_empty(&self) -> bool {
        self.members().is_empty()
    }

    /// Removes the (empty) cgroup; this process leaves it first if it could not
    /// before.
    pub fn remove(&self) {
        if self.holds_self {
            let me = std::process::id().to_string();
            let _ = std::fs::write(self.home.join("cgroup.procs"), me);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The directory of this process's cgroup v2.
fn own_cgroup_dir() -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let dir = cgroup_dir(&cgroups, &mountinfo)?;
    // Whether it is writable shows when the attempt's cgroup is made in it.
    dir.is_dir().then_some(dir)
}

/// Where the cgroup v2 named in `cgroups` (`/proc/PID/cgroup`) is mounted, by
/// `mountinfo` (`/proc/PID/mountinfo`).
fn cgroup_dir(cgroups: &str, mountinfo: &str) -> Option<PathBuf> {
    // The unified hierarchy's line is `0::PATH` (alone on a pure v2 system,
    // beside the v1 controllers' lines on a hybrid one).
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    mountinfo.lines().find_map(|line| {
        // `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS... - FSTYPE SOURCE SUPER_OPTIONS`
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = before.split_whitespace().collect();
        let (root, mount_point) = (*fields.get(3)?, *fields.get(4)?);
        let relative = path.strip_prefix(root.trim_end_matches('/'))?;
        Some(Path::new(mount_point).join(relative.trim_start_matches('/')))
    })
}

/// One process as `/proc/PID/stat` tells it.
struct Proc {
    parent: i32,
    zombie: bool,
}

/// Every process, by pid. Empty without `/proc`.
fn processes() -> HashMap<i32, Proc> {
    let mut all = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return all;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`; COMM may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (Some(state), Some(parent)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(parent) = parent.parse() else {
            continue;
        };
        all.insert(
            pid,
            Proc {
                parent,
                zombie: state == "Z" || state == "X",
            },
        );
    }
    all
}

/// The descendants of `root`, each with whether it is a zombie.
fn descendants(all: &HashMap<i32, Proc>, root: i32) -> Vec<(i32, bool)> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, p) in all {
        children.entry(p.parent).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push((child, all[&child].zombie));
            queue.push(child);
        }
    }
    found
}

/// Kills everything the step started: the child's process group, the attempt's
/// cgroup, and every descendant of this (subreaper) process, until none is left
/// alive or [`KILL_PATIENCE`] runs out. Reaps the orphans this process inherited, but
/// not `child`, whose status the caller collects.
pub fn kill_everything(child: Pid, cgroup: Option<&Cgroup>) {
    let _ = killpg(child, Signal::SIGKILL);
    let me = std::process::id() as i32;
    let give_up = Instant::now() + KILL_PATIENCE;
    loop {
        if let Some(cgroup) = cgroup {
            cgroup.kill();
        }
        let all = processes();
        let mut alive = 0;
        for (pid, zombie) in descendants(&all, me) {
            if !zombie {
                alive += 1;
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            } else if pid != child.as_raw() && all[&pid].parent == me {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
            }
        }
        let empty = cgroup.is_none_or(Cgroup::is_empty);
        if (alive == 0 && empty) || Instant::now() > give_up {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Some(cgroup) = cgroup {
        cgroup.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_follow_the_parent_chain() {
        let all: HashMap<i32, Proc> = [(10, 1), (11, 10), (12, 11), (13, 1), (14, 12)]
            .into_iter()
            .map(|(pid, parent)| {
                let zombie = pid == 12;
                (pid, Proc { parent, zombie })
            })
            .collect();
        let mut found = descendants(&all, 10);
        found.sort();
        assert_eq!(found, [(11, false), (12, true), (14, false)]);
    }

    #[test]
    fn the_cgroup_dir_is_found_on_hybrid_and_pure_v2_systems() {
        let hybrid_cgroups = "4:memory:/x\n1:cpu:/\n0::/user.slice/w.scope\n";
        let hybrid_mounts = "\
            30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n\
            35 25 0:30 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_dir(hybrid_cgroups, hybrid_mounts),
            Some(PathBuf::from("/sys/fs/cgroup/unified/user.slice/w.scope"))
        );
        let pure = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_dir("0::/\n", pure),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        // A container given its own part of the tree by a bind mount.
        let nested = "29 23 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_dir("0::/docker/abc/app\n", nested),
            Some(PathBuf::from("/sys/fs/cgroup/app"))
        );
        assert_eq!(cgroup_dir("4:memory:/x\n", hybrid_mounts), None);
        assert_eq!(
            cgroup_dir("0::/\n", "30 25 0:26 / /m rw - cgroup cgroup rw\n"),
            None
        );
    }
}
