//! Runs the machines of an ETL run side by side: a fixed number of worker threads take jobs
//! from a shared queue, so one long machine does not hold up the rest. Polars parallelises
//! inside each query too; machines side by side keep the cores busy through the parts of a
//! merge that are serial (file opening, the run segmentation, writing and fsyncing outputs).

use std::sync::Mutex;

/// Applies `f` to every job on up to `workers` threads (0: one per core) and returns each job
/// with its result, in the jobs' order.
pub fn map<J: Send + Sync, R: Send>(jobs: Vec<J>, workers: usize, f: impl Fn(&J) -> R + Sync) -> Vec<(J, R)> {
    let workers = match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(jobs.len())
    .max(1);
    let next = Mutex::new(0usize);
    let results: Vec<Mutex<Option<R>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                        *n += 1;
                        *n - 1
                    };
                    let Some(job) = jobs.get(i) else { break };
                    let r = f(job);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    jobs.into_iter()
        .zip(results)
        .filter_map(|(j, r)| r.into_inner().unwrap_or_else(|p| p.into_inner()).map(|r| (j, r)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_once_and_results_keep_the_order() {
        let seen = Mutex::new(Vec::new());
        let out = map((0..50).collect(), 3, |j: &i32| {
            seen.lock().unwrap().push(*j);
            j * 2
        });
        assert_eq!(
            out.iter().map(|(j, r)| (*j, *r)).collect::<Vec<_>>(),
            (0..50).map(|j| (j, j * 2)).collect::<Vec<_>>()
        );
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert!(map(Vec::<i32>::new(), 0, |j| *j).is_empty());
    }
}
