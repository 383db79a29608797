//! Check-and-persist is atomic per log: requests racing over one log are
//! decided one at a time, so exactly one wins each step and none rolls the
//! witness back (tlog-witness's race of requests A and B).

use std::sync::Barrier;

use regis_note::parse_size_body;
use regis_witness::{Limits, Options};

use crate::common::{Register, Serving, check_cosignature, temp_witness_dir, witness_dir};

const THREADS: u64 = 8;

#[test]
fn racing_requests_for_one_log_never_roll_it_back() {
    let (_temp, dir) = temp_witness_dir();
    let register = Register::new("country", [1; 32], "real", (200, 1));
    let witness = witness_dir(&dir, &register);
    let served = Serving::start(&dir, Options::default(), Limits::default());
    let log = &register.user;

    // The same step, sent at once by every thread: one cosignature, and
    // every other request finds the witness already there.
    for size in 1..=5 {
        let barrier = Barrier::new(THREADS as usize);
        let answers: Vec<_> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| {
                        let body = log.request(size - 1, size);
                        barrier.wait();
                        served.add_checkpoint(&body)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let won: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
        assert_eq!(won.len(), 1, "size {size}: {answers:?}");
        check_cosignature(&won[0].body, &log.checkpoint(size), log, &witness);
        for lost in answers.iter().filter(|a| a.status != 200) {
            assert_eq!(lost.status, 409, "size {size}: {lost:?}");
            assert_eq!(lost.body, format!("{size}\n"));
        }
    }

    // Threads aiming at different sizes, each retrying from the size a
    // 409 gives until it wins or the witness has passed its target.
    let barrier = Barrier::new(THREADS as usize);
    let targets: Vec<u64> = (0..THREADS).map(|t| 10 + 20 * t).collect();
    let wins: Vec<Option<(u64, u64)>> = std::thread::scope(|scope| {
        let threads: Vec<_> = targets
            .iter()
            .map(|&target| {
                let (served, barrier, witness) = (&served, &barrier, &witness);
                scope.spawn(move || {
                    let mut old = 5;
                    barrier.wait();
                    loop {
                        let answer = served.add_checkpoint(&log.request(old, target));
                        match answer.status {
                            200 => {
                                check_cosignature(
                                    &answer.body,
                                    &log.checkpoint(target),
                                    log,
                                    witness,
                                );
                                return Some((old, target));
                            }
                            409 => {
                                let latest = parse_size_body(answer.body.as_bytes()).unwrap();
                                if latest >= target {
                                    return None;
                                }
                                old = latest;
                            }
                            _ => panic!("{target}: {answer:?}"),
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    // The wins form one chain from 5, each from the size the last left,
    // always upward; the witness ends where the chain does.
    let mut wins: Vec<(u64, u64)> = wins.into_iter().flatten().collect();
    wins.sort_unstable();
    let mut at = 5;
    for &(old, new) in &wins {
        assert_eq!(old, at, "{wins:?}");
        assert!(new > old, "{wins:?}");
        at = new;
    }
    // Nothing can pass the largest target, so its thread always wins.
    assert_eq!(at, *targets.iter().max().unwrap(), "{wins:?}");
    let answer = served.checkpoint_of(log);
    let signed = regis_note::SignedCheckpoint::parse(answer.body.as_bytes()).unwrap();
    assert_eq!(signed.checkpoint().size(), at);
}
