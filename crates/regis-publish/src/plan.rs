//! The plan of a publication, pure: from the pair of sizes last published
//! to the new pair, which objects to upload, and which folders of
//! superseded objects to clear afterwards (`spec/static.md`, "Order").

use regis_merkle::tile::{MAX_TILE_LEVEL, TILE_HEIGHT, TILE_WIDTH, TileKind, TilePath};
use regis_model::{Log, PerLog};

/// The width of an RSF chunk, in user entries.
pub const CHUNK: u64 = TILE_WIDTH as u64;

/// An object of a register's static copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Object {
    /// A hash tile or entry bundle of a log.
    Tile(Log, TilePath),
    /// The RSF chunk `start/start+256`, full (immutable).
    RsfChunk(u64),
    /// The RSF tail `start/end` at the user size `end` (mutable).
    RsfTail {
        /// Where it starts: a multiple of 256.
        start: u64,
        /// The user size it ends at.
        end: u64,
    },
    /// `B/register`.
    Register,
    /// `B/witness-policy`.
    WitnessPolicy,
    /// A log's checkpoint.
    Checkpoint(Log),
}

/// The folder under a log's name: `log` or `system-log`.
pub fn log_dir(log: Log) -> &'static str {
    match log {
        Log::User => "log",
        Log::System => "system-log",
    }
}

impl Object {
    /// Its path below the target, for register `name` (`registers/NAME/…`,
    /// the server's own path).
    pub fn path(&self, name: &str) -> String {
        match self {
            Object::Tile(log, tile) => format!("registers/{name}/{}/{tile}", log_dir(*log)),
            Object::RsfChunk(start) => {
                format!("registers/{name}/download-rsf/{start}/{}", start + CHUNK)
            }
            Object::RsfTail { start, end } => {
                format!("registers/{name}/download-rsf/{start}/{end}")
            }
            Object::Register => format!("registers/{name}/register"),
            Object::WitnessPolicy => format!("registers/{name}/witness-policy"),
            Object::Checkpoint(log) => format!("registers/{name}/{}/checkpoint", log_dir(*log)),
        }
    }

    /// Whether it never changes once written (cached for a week).
    pub fn is_immutable(&self) -> bool {
        matches!(self, Object::Tile(..) | Object::RsfChunk(_))
    }

    /// Its `Content-Type`, as the server answers it.
    pub fn content_type(&self) -> &'static str {
        match self {
            Object::Tile(..) => "application/octet-stream",
            Object::RsfChunk(_) | Object::RsfTail { .. } => "application/uk-gov-rsf",
            Object::Register => "application/json",
            Object::WitnessPolicy | Object::Checkpoint(_) => "text/plain; charset=utf-8",
        }
    }
}

/// A folder of objects a publication supersedes, cleared after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Superseded {
    /// The partial versions of a tile or bundle that is now full:
    /// everything under `…/tile/L/N.p/`.
    Partials(Log, TilePath),
    /// The tails of an RSF chunk that is now full: everything under
    /// `download-rsf/{start}/` but the chunk itself.
    Tails(u64),
}

impl Superseded {
    /// The folder listed, below the target, for register `name`.
    pub fn folder(&self, name: &str) -> String {
        match self {
            Superseded::Partials(log, tile) => {
                format!("registers/{name}/{}/{tile}.p/", log_dir(*log))
            }
            Superseded::Tails(start) => format!("registers/{name}/download-rsf/{start}/"),
        }
    }

    /// The path in the folder that is kept (the full chunk), if any.
    pub fn kept(&self, name: &str) -> Option<String> {
        match self {
            Superseded::Partials(..) => None,
            Superseded::Tails(start) => Some(Object::RsfChunk(*start).path(name)),
        }
    }
}

/// What one publication does, from `from` (the sizes whose objects the
/// target holds) to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Steps 1 to 3, in any order: tiles and bundles, RSF chunks and the
    /// tail, `B/register` and `B/witness-policy`.
    pub objects: Vec<Object>,
    /// Step 4, in this order, only once every object above is stored.
    pub checkpoints: [Object; 2],
    /// Step 6, once the new state is durable.
    pub superseded: Vec<Superseded>,
}

/// Stored hashes at tile level `level` in a tree of `size`.
fn hashes_at(level: u8, size: u64) -> u64 {
    size.checked_shr(u32::from(level) * TILE_HEIGHT)
        .unwrap_or(0)
}

/// The tiles (or bundles, `kind` being [`TileKind::Entries`]) of one level
/// of `log` that the tree of `new` leaves holds and that of `old` did not:
/// full tiles that became full, and the partial tile of `new` if there is
/// one and the level grew. Pushes to `objects`, and to `superseded` the
/// tile that was partial at `old` if it is now full.
fn level_tiles(
    log: Log,
    kind: TileKind,
    (old, new): (u64, u64),
    objects: &mut Vec<Object>,
    superseded: &mut Vec<Superseded>,
) {
    let level = match kind {
        TileKind::Hashes { level } => level,
        TileKind::Entries => 0,
    };
    let (had, has) = (hashes_at(level, old), hashes_at(level, new));
    if has <= had {
        return;
    }
    let width = u64::from(TILE_WIDTH);
    for index in had / width..has / width {
        if let Some(tile) = TilePath::in_tree(kind, index, new) {
            objects.push(Object::Tile(log, tile));
            if index == had / width && had % width != 0 {
                superseded.push(Superseded::Partials(log, tile));
            }
        }
    }
    if has % width != 0
        && let Some(tile) = TilePath::in_tree(kind, has / width, new)
    {
        objects.push(Object::Tile(log, tile));
    }
}

/// The plan from `from` to `to` (each log's size; `to` at least `from`),
/// for a register with a witness policy if `witnessed`. Empty when the
/// sizes are the same: nothing is published.
pub fn plan(from: PerLog<u64>, to: PerLog<u64>, witnessed: bool) -> Option<Plan> {
    if from == to {
        return None;
    }
    let mut objects = Vec::new();
    let mut superseded = Vec::new();
    for log in PerLog::<()>::LOGS {
        let sizes = (from[log], to[log]);
        for level in 0..=MAX_TILE_LEVEL {
            if hashes_at(level, sizes.1) == 0 {
                break;
            }
            level_tiles(
                log,
                TileKind::Hashes { level },
                sizes,
                &mut objects,
                &mut superseded,
            );
        }
        level_tiles(log, TileKind::Entries, sizes, &mut objects, &mut superseded);
    }
    let (old, new) = (from[Log::User], to[Log::User]);
    // Chunk `a` is full once the user log is past `a + 256`; those whose
    // end was at least `old` were not full before.
    let first = old.saturating_sub(CHUNK).div_ceil(CHUNK) * CHUNK;
    let old_tail = tail_start(old);
    let mut start = first;
    while start + CHUNK < new {
        objects.push(Object::RsfChunk(start));
        if start == old_tail {
            superseded.push(Superseded::Tails(start));
        }
        start += CHUNK;
    }
    objects.push(Object::RsfTail {
        start: tail_start(new),
        end: new,
    });
    objects.push(Object::Register);
    if witnessed {
        objects.push(Object::WitnessPolicy);
    }
    Some(Plan {
        objects,
        checkpoints: [
            Object::Checkpoint(Log::System),
            Object::Checkpoint(Log::User),
        ],
        superseded,
    })
}

/// Where the tail of user size `size` starts: `256·⌊(size−1)/256⌋`, 0 for
/// the empty log.
pub fn tail_start(size: u64) -> u64 {
    size.saturating_sub(1) / CHUNK * CHUNK
}
