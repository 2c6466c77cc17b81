//! Resource usage of a run's process tree, read from `/proc`, and of the
//! host's GPUs through `nvidia-smi` where it exists.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// One reading of a process tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeUsage {
    /// CPU time of every process in the tree, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident memory of every process in the tree, in bytes.
    pub rss_bytes: u64,
    /// Processes in the tree.
    pub processes: u32,
    pub at: Instant,
}

/// One GPU's utilisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuUsage {
    pub index: u32,
    /// Percent busy.
    pub utilization: f64,
    /// Memory in use, in megabytes.
    pub memory_mb: f64,
}

/// `(ppid, utime + stime)` from a `/proc/<pid>/stat` line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_stat(stat: &str) -> Option<(i64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// `VmRSS` of a `/proc/<pid>/status`, in bytes.
fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Usage of `root` and all its descendants; `None` once `root` is gone.
pub fn tree_usage(root: u32) -> Option<TreeUsage> {
    let mut parents: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut ticks: BTreeMap<i64, u64> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // exited meanwhile
        };
        if let Some((ppid, cpu)) = parse_stat(&stat) {
            parents.entry(ppid).or_default().push(pid);
            ticks.insert(pid, cpu);
        }
    }
    let root = i64::from(root);
    if !ticks.contains_key(&root) {
        return None;
    }
    let mut tree = BTreeSet::from([root]);
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        for child in parents.get(&pid).into_iter().flatten() {
            if tree.insert(*child) {
                pending.push(*child);
            }
        }
    }
    let mut usage = TreeUsage {
        cpu_ticks: 0,
        rss_bytes: 0,
        processes: 0,
        at: Instant::now(),
    };
    for pid in tree {
        usage.cpu_ticks += ticks.get(&pid).copied().unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        usage.rss_bytes += parse_rss(&status).unwrap_or(0);
        usage.processes += 1;
    }
    Some(usage)
}

/// Clock ticks per second of `/proc` CPU times.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// CPU use between two readings, in percent of one core.
pub fn cpu_percent(before: &TreeUsage, after: &TreeUsage) -> f64 {
    let seconds = after.at.duration_since(before.at).as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64;
    ticks / ticks_per_second() / seconds * 100.0
}

/// Every GPU's utilisation, if `nvidia-smi` is installed and answers.
pub async fn gpu_usage() -> Vec<GpuUsage> {
    let output = tokio::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,utilization.gpu,memory.used",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .await;
    match output {
        Ok(output) if output.status.success() => {
            parse_gpus(&String::from_utf8_lossy(&output.stdout))
        }
        _ => Vec::new(),
    }
}

fn parse_gpus(csv: &str) -> Vec<GpuUsage> {
    csv.lines()
        .filter_map(|line| {
            let mut parts = line.split(',').map(str::trim);
            Some(GpuUsage {
                index: parts.next()?.parse().ok()?,
                utilization: parts.next()?.parse().ok()?,
                memory_mb: parts.next()?.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "4242 (my (odd) name) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 200";
        assert_eq!(parse_stat(line), Some((17, 300)));
        assert_eq!(
            parse_rss("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2048 * 1024)
        );
    }

    #[test]
    fn gpu_csv_parses() {
        let gpus = parse_gpus("0, 87, 10240\n1, 3, 512\n");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].utilization, 87.0);
        assert_eq!(gpus[1].memory_mb, 512.0);
    }

    #[test]
    fn this_process_is_measured() {
        let usage = tree_usage(std::process::id());
        assert!(usage.is_some_and(|u| u.rss_bytes > 0 && u.processes >= 1));
        assert!(tree_usage(u32::MAX).is_none());
    }
}
