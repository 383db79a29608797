//! regis-merkle against the bare hash work it cannot avoid and against the
//! independent `ct-merkle` crate (0.3, `MemoryBackedTree`).
//!
//! Groups, in run order:
//! - `leaf_hash/<bytes>`, `node_hash`: one hash; regis, ct-merkle's way of
//!   hashing (its `leaf_hash`/`parent_hash` are private, so the same sha2
//!   calls written out), and raw sha2 on the same contiguous bytes.
//! - `append_1m`: 1,000,000 leaves of 64 bytes appended and the root taken;
//!   regis `Frontier` vs the bare hash work (1M leaf hashes + 999,999 node
//!   hashes in a flat level-by-level loop, the same `leaf_hash`/`node_hash`
//!   calls) vs ct-merkle.
//!   Memory is printed.
//! - `prove`: inclusion and consistency proofs from a `MemoryHashes` of 10M
//!   leaves (built before timing), at 10M with a ready `Edge`, at 9,999,999
//!   with `Edge::from_reader` inside the timed section, and at 1M against
//!   ct-merkle on the same indexes.
//! - `verify`: checking 10M-leaf proofs, regis vs ct-merkle (ct-merkle checks
//!   the very same proofs: the RFC 9162 byte layout is shared).
//!
//! Setup also cross-checks the libraries: every variant computes the same
//! root, regis proofs at 1M are byte-identical to ct-merkle's, and each
//! library accepts all 2 x 4096 pooled 10M proofs.
//!
//! Run: `cargo bench -p regis-merkle --bench merkle` (about 3 minutes).

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use regis_merkle::{
    Edge, Frontier, Hash, MemoryHashes, consistency_proof, inclusion_proof, leaf_hash, node_hash,
    verify_consistency, verify_inclusion,
};
use sha2::{Digest, Sha256};

/// Bytes per leaf in the tree benchmarks.
const LEAF_LEN: usize = 64;
type Leaf = [u8; LEAF_LEN];

/// Leaves in the append benchmark and in the ct-merkle proof tree.
const APPEND_LEAVES: u64 = 1_000_000;
/// Leaves in the stored-hash source proofs are made from.
const BIG: u64 = 10_000_000;
/// An arbitrary size: 14 set bits (10M has 8), so its `Edge` folds 13 hashes.
const ODD: u64 = BIG - 1;
/// Proofs precomputed for the verification benchmarks.
const POOL: usize = 4096;

/// xorshift64*: deterministic, dependency-free indexes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform enough in `[0, n)` for n far below 2^64.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The bytes of leaf `i`: 64 pseudo-random bytes.
fn leaf_data(i: u64) -> Leaf {
    let mut rng = Rng::new(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
    let mut leaf = [0u8; LEAF_LEN];
    for chunk in leaf.chunks_exact_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes());
    }
    leaf
}

/// Resident set size of this process, from /proc (0 where unavailable).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

type CtTree<'a> = MemoryBackedTree<Sha256, &'a Leaf>;

fn ct_output(hash: &Hash) -> ct_merkle::digest::Output<Sha256> {
    (*hash).into()
}

// ---------------------------------------------------------------------------
// Bare hash work: the same `leaf_hash`/`node_hash` calls, in flat loops.

/// Pairs `buf` level by level in place, carrying an odd last node up: this is
/// RFC 6962's MTH (its left subtrees are perfect), with `len - 1` node hashes.
fn reduce_in_place(buf: &mut [Hash], node: impl Fn(&Hash, &Hash) -> Hash) -> Hash {
    let mut n = buf.len();
    while n > 1 {
        let half = n / 2;
        for i in 0..half {
            buf[i] = node(&buf[2 * i], &buf[2 * i + 1]);
        }
        if n % 2 == 1 {
            buf[half] = buf[n - 1];
        }
        n = half + n % 2;
    }
    buf[0]
}

/// The root over `leaves` (leaf hashes): `len - 1` node hashes into `buf`.
fn bare_root_of_hashes(leaves: &[Hash], buf: &mut Vec<Hash>) -> Hash {
    buf.clear();
    buf.extend(leaves.chunks(2).map(|pair| match pair {
        [left, right] => node_hash(left, right),
        [last] => *last,
        _ => unreachable!(),
    }));
    reduce_in_place(buf, node_hash)
}

/// The root over `data`: `len` leaf hashes and `len - 1` node hashes.
fn bare_root_of_data(data: &[Leaf], buf: &mut Vec<Hash>) -> Hash {
    buf.clear();
    buf.extend(data.iter().map(|leaf| leaf_hash(leaf)));
    reduce_in_place(buf, node_hash)
}

// ---------------------------------------------------------------------------
// 1. One hash.

fn hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("leaf_hash");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for len in [32usize, 64, 1024] {
        let data: Vec<u8> = (0..len as u64).map(|i| leaf_data(i)[0]).collect();
        let prefixed: Vec<u8> = std::iter::once(0u8).chain(data.iter().copied()).collect();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("regis", len), &data, |b, data| {
            b.iter(|| leaf_hash(black_box(data)))
        });
        // What ct-merkle's private `leaf_hash` does: a prefixed hasher, one
        // update per leaf, finalize.
        group.bench_with_input(
            BenchmarkId::new("ct-merkle-style", len),
            &data,
            |b, data| {
                b.iter(|| {
                    let mut hasher = Sha256::new_with_prefix([0u8]);
                    hasher.update(black_box(data));
                    <[u8; 32]>::from(hasher.finalize())
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("sha2-contiguous", len),
            &prefixed,
            |b, bytes| b.iter(|| <[u8; 32]>::from(Sha256::digest(black_box(bytes)))),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("node_hash");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let (left, right) = (leaf_hash(b"left"), leaf_hash(b"right"));
    let mut block = [1u8; 65];
    block[1..33].copy_from_slice(&left);
    block[33..].copy_from_slice(&right);
    group.bench_function("regis", |b| {
        b.iter(|| node_hash(black_box(&left), black_box(&right)))
    });
    group.bench_function("ct-merkle-style", |b| {
        b.iter(|| {
            let mut hasher = Sha256::new_with_prefix([1u8]);
            hasher.update(black_box(&left));
            hasher.update(black_box(&right));
            <[u8; 32]>::from(hasher.finalize())
        })
    });
    group.bench_function("sha2-contiguous", |b| {
        b.iter(|| <[u8; 32]>::from(Sha256::digest(black_box(&block))))
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// 2. Appending 1M leaves.

fn append(c: &mut Criterion) {
    let data: Vec<Leaf> = (0..APPEND_LEAVES).map(leaf_data).collect();
    let hashes: Vec<Hash> = data.iter().map(|leaf| leaf_hash(leaf)).collect();
    let mut buf: Vec<Hash> = Vec::with_capacity(data.len());

    // Every variant computes the same root.
    let mut frontier = Frontier::new();
    for leaf in &data {
        frontier.push(leaf).unwrap();
    }
    let root = frontier.root();
    assert_eq!(bare_root_of_data(&data, &mut buf), root);
    assert_eq!(bare_root_of_hashes(&hashes, &mut buf), root);

    let before = rss_bytes();
    let mut ct = CtTree::new();
    for leaf in &data {
        ct.push(leaf);
    }
    let ct_rss = rss_bytes().saturating_sub(before);
    assert_eq!(ct.root().as_bytes().as_slice(), &root);
    drop(ct);
    let n = APPEND_LEAVES;
    println!(
        "memory: size_of::<Frontier>() = {} B, size_of::<Edge>() = {} B (fixed, any size); \
         ct-merkle MemoryBackedTree<Sha256, &[u8; 64]> of {n} leaves: {:.1} MiB RSS growth \
         ({:.1} MiB of hashes + {:.1} MiB of leaf references, before Vec slack)",
        std::mem::size_of::<Frontier>(),
        std::mem::size_of::<Edge>(),
        mib(ct_rss),
        mib((2 * n - 1) * 32),
        mib(n * std::mem::size_of::<&Leaf>() as u64),
    );

    let mut group = c.benchmark_group("append_1m");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(APPEND_LEAVES));

    group.bench_function("bare/leaf+node hashes", |b| {
        b.iter(|| bare_root_of_data(black_box(&data), &mut buf))
    });
    group.bench_function("regis/Frontier::push(data)+root", |b| {
        b.iter(|| {
            let mut frontier = Frontier::new();
            for leaf in black_box(&data) {
                let _ = frontier.push(leaf);
            }
            frontier.root()
        })
    });
    group.bench_function("bare/node hashes", |b| {
        b.iter(|| bare_root_of_hashes(black_box(&hashes), &mut buf))
    });
    group.bench_function("regis/Frontier::push_hash+root", |b| {
        b.iter(|| {
            let mut frontier = Frontier::new();
            for leaf in black_box(&hashes) {
                let _ = frontier.push_hash(*leaf, |_, _, _| {});
            }
            frontier.root()
        })
    });
    // What a log keeping every hash does (ct-merkle keeps them all too).
    group.bench_function("regis/push(data)+MemoryHashes::store+root", |b| {
        b.iter_with_large_drop(|| {
            let mut frontier = Frontier::new();
            let mut stored = MemoryHashes::new();
            for leaf in black_box(&data) {
                let _ = frontier.push_hash(leaf_hash(leaf), |level, index, hash| {
                    stored.store(level, index, hash)
                });
            }
            (frontier.root(), stored)
        })
    });
    group.bench_function("ct-merkle/push(data)+root", |b| {
        b.iter_with_large_drop(|| {
            let mut tree = CtTree::new();
            for leaf in black_box(&data) {
                tree.push(leaf);
            }
            (tree.root(), tree)
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// 3. Making proofs.

/// Stored hashes of a 10M-leaf tree, and the proofs the verify group checks.
struct Big {
    hashes: MemoryHashes,
    edge: Edge,
}

fn big() -> &'static Big {
    static BIG_TREE: OnceLock<Big> = OnceLock::new();
    BIG_TREE.get_or_init(|| {
        let before = rss_bytes();
        let start = std::time::Instant::now();
        let hashes = MemoryHashes::from_leaf_hashes((0..BIG).map(|i| leaf_hash(&leaf_data(i))));
        let edge = Edge::from_reader(&hashes, BIG).unwrap();
        println!(
            "setup: MemoryHashes of {BIG} leaves built in {:.1} s, {:.0} MiB RSS growth \
             ({:.0} MiB of hashes before Vec slack)",
            start.elapsed().as_secs_f64(),
            mib(rss_bytes().saturating_sub(before)),
            mib((2 * BIG - 1) * 32),
        );
        Big { hashes, edge }
    })
}

fn prove(c: &mut Criterion) {
    let big = big();
    let (hashes, edge) = (&big.hashes, &big.edge);

    // ct-merkle at 1M (building it at 10M takes over 13 s per run: it rehashes
    // the path to the root on every push), and regis at 1M on the same leaves
    // and the same indexes.
    let data: Vec<Leaf> = (0..APPEND_LEAVES).map(leaf_data).collect();
    let mut ct = CtTree::new();
    for leaf in &data {
        ct.push(leaf);
    }
    let small = MemoryHashes::from_leaf_hashes(data.iter().map(|leaf| leaf_hash(leaf)));
    let small_edge = Edge::from_reader(&small, APPEND_LEAVES).unwrap();
    assert_eq!(ct.root().as_bytes().as_slice(), &small_edge.root());
    let mut rng = Rng::new(7);
    for _ in 0..64 {
        let (index, old) = (rng.below(APPEND_LEAVES), 1 + rng.below(APPEND_LEAVES - 1));
        let proof = inclusion_proof(&small, &small_edge, index).unwrap();
        assert_eq!(
            proof.concat(),
            ct.prove_inclusion(index as usize).as_bytes()
        );
        let proof = consistency_proof(&small, &small_edge, old).unwrap();
        let ct_proof = ct.prove_consistency((APPEND_LEAVES - old) as usize);
        assert_eq!(proof.concat(), ct_proof.as_bytes());
    }

    let mut group = c.benchmark_group("prove");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    let seed = 42;
    group.bench_function("regis/inclusion/10M", |b| {
        let mut rng = Rng::new(seed);
        b.iter(|| inclusion_proof(hashes, edge, rng.below(BIG)).unwrap())
    });
    group.bench_function("regis/consistency/10M", |b| {
        let mut rng = Rng::new(seed);
        b.iter(|| consistency_proof(hashes, edge, 1 + rng.below(BIG - 1)).unwrap())
    });
    group.bench_function("regis/Edge::from_reader/10M", |b| {
        b.iter(|| Edge::from_reader(hashes, black_box(BIG)).unwrap())
    });
    group.bench_function("regis/Edge::from_reader/9999999", |b| {
        b.iter(|| Edge::from_reader(hashes, black_box(ODD)).unwrap())
    });
    group.bench_function("regis/Edge::from_reader+inclusion/9999999", |b| {
        let mut rng = Rng::new(seed);
        b.iter(|| {
            let edge = Edge::from_reader(hashes, black_box(ODD)).unwrap();
            inclusion_proof(hashes, &edge, rng.below(ODD)).unwrap()
        })
    });
    group.bench_function("regis/Edge::from_reader+consistency/9999999", |b| {
        let mut rng = Rng::new(seed);
        b.iter(|| {
            let edge = Edge::from_reader(hashes, black_box(ODD)).unwrap();
            consistency_proof(hashes, &edge, 1 + rng.below(ODD - 1)).unwrap()
        })
    });
    group.bench_function("regis/inclusion/1M", |b| {
        let mut rng = Rng::new(seed);
        b.iter(|| inclusion_proof(&small, &small_edge, rng.below(APPEND_LEAVES)).unwrap())
    });
    group.bench_function("ct-merkle/inclusion/1M", |b| {
        let mut rng = Rng::new(seed);
        b.iter(|| ct.prove_inclusion(rng.below(APPEND_LEAVES) as usize))
    });
    group.bench_function("regis/consistency/1M", |b| {
        let mut rng = Rng::new(seed);
        b.iter(|| consistency_proof(&small, &small_edge, 1 + rng.below(APPEND_LEAVES - 1)).unwrap())
    });
    group.bench_function("ct-merkle/consistency/1M", |b| {
        let mut rng = Rng::new(seed);
        b.iter(|| {
            let old = 1 + rng.below(APPEND_LEAVES - 1);
            ct.prove_consistency((APPEND_LEAVES - old) as usize)
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// 4. Checking proofs.

fn verify(c: &mut Criterion) {
    let big = big();
    let (hashes, edge) = (&big.hashes, &big.edge);
    let root = edge.root();
    let ct_root = RootHash::<Sha256>::new(ct_output(&root), BIG);

    let mut rng = Rng::new(99);
    let inclusions: Vec<(u64, Leaf, Vec<Hash>, InclusionProof<Sha256>)> = (0..POOL)
        .map(|_| {
            let index = rng.below(BIG);
            let proof = inclusion_proof(hashes, edge, index).unwrap();
            let ct_proof = InclusionProof::try_from_bytes(proof.concat()).unwrap();
            (index, leaf_data(index), proof, ct_proof)
        })
        .collect();
    type Consistency = (
        u64,
        Hash,
        RootHash<Sha256>,
        Vec<Hash>,
        ConsistencyProof<Sha256>,
    );
    let consistencies: Vec<Consistency> = (0..POOL)
        .map(|_| {
            let old = 1 + rng.below(BIG - 1);
            let old_root = Edge::from_reader(hashes, old).unwrap().root();
            let proof = consistency_proof(hashes, edge, old).unwrap();
            let ct_proof = ConsistencyProof::try_from_bytes(proof.concat()).unwrap();
            (
                old,
                old_root,
                RootHash::new(ct_output(&old_root), old),
                proof,
                ct_proof,
            )
        })
        .collect();
    // Both libraries accept every proof of the pool.
    for (index, leaf, proof, ct_proof) in &inclusions {
        verify_inclusion(&leaf_hash(leaf), *index, BIG, proof, &root).unwrap();
        ct_root.verify_inclusion(leaf, *index, ct_proof).unwrap();
    }
    for (old, old_root, ct_old_root, proof, ct_proof) in &consistencies {
        verify_consistency(*old, BIG, proof, old_root, &root).unwrap();
        ct_root.verify_consistency(ct_old_root, ct_proof).unwrap();
    }
    let leaf_hashes: Vec<Hash> = inclusions
        .iter()
        .map(|(_, leaf, _, _)| leaf_hash(leaf))
        .collect();

    let mut group = c.benchmark_group("verify");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    group.bench_function("regis/inclusion(leaf hash given)/10M", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % POOL;
            let (index, _, proof, _) = &inclusions[i];
            verify_inclusion(&leaf_hashes[i], *index, BIG, proof, &root)
        })
    });
    group.bench_function("regis/inclusion(leaf_hash+verify)/10M", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % POOL;
            let (index, leaf, proof, _) = &inclusions[i];
            verify_inclusion(&leaf_hash(leaf), *index, BIG, proof, &root)
        })
    });
    group.bench_function("ct-merkle/inclusion(hashes the leaf)/10M", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % POOL;
            let (index, leaf, _, ct_proof) = &inclusions[i];
            ct_root.verify_inclusion(leaf, *index, ct_proof)
        })
    });
    group.bench_function("regis/consistency/10M", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % POOL;
            let (old, old_root, _, proof, _) = &consistencies[i];
            verify_consistency(*old, BIG, proof, old_root, &root)
        })
    });
    group.bench_function("ct-merkle/consistency/10M", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % POOL;
            let (_, _, ct_old_root, _, ct_proof) = &consistencies[i];
            ct_root.verify_consistency(ct_old_root, ct_proof)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = hashing, append, prove, verify
}
criterion_main!(benches);
