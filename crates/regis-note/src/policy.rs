//! C2SP tlog-policy: which logs and witnesses a verifier knows, and the
//! quorum of witnesses whose cosignatures make a checkpoint valid.
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <member>...
//! quorum <name>|none
//! ```
//!
//! Parsed strictly from bytes, as the spec writes it: every line ends in a
//! newline; items are separated by spaces and tabs; blank lines and `#`
//! comment lines are ignored; only tab, newline, 0x20–0x7E and 0x80–0xFF
//! bytes. A name is defined once (witnesses and groups share one namespace,
//! `none` is predefined) before it is used, each at most once per group, and
//! `1 <= k <= n`. Log keys are Ed25519 (0x01), witness keys cosignature/v1
//! (0x04); no two logs, nor two witnesses, share a public key. Exactly one
//! quorum line. At most 64 logs, 64 witnesses and 64 groups.
//!
//! Where the spec leaves room: names, URLs and keys must be UTF-8 (names
//! are compared byte for byte, never normalised); comments may hold any
//! allowed bytes. A `#` starts a comment only at the start of a line.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

use crate::checkpoint::SignedCheckpoint;
use crate::key::{KeyError, KeyId, KeyName, SignatureType};
use crate::note::VerifyError;
use crate::text::parse_decimal;
use crate::verifier::{SignatureError, Verifier, Verifiers};

/// How far past the caller's `now` a cosignature's timestamp may be, in
/// seconds: clocks differ a little, a witness's clock far ahead is refused.
pub const MAX_FUTURE_SKEW: u64 = 60;

/// The most `log` lines a policy may have.
pub const MAX_POLICY_LOGS: usize = 64;

/// The most `witness` lines a policy may have.
pub const MAX_POLICY_WITNESSES: usize = 64;

/// The most `group` lines a policy may have.
pub const MAX_POLICY_GROUPS: usize = 64;

/// The predefined quorum that requires no cosignature.
const NONE: &str = "none";

/// A parsed policy: known logs and witnesses, their groups, and the quorum.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WitnessPolicy {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    cosigners: Verifiers,
    groups: Vec<Group>,
    /// `None` for `quorum none`.
    quorum: Option<Member>,
}

/// A `witness` line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PolicyWitness {
    pub name: String,
    /// Type 0x04 (cosignature/v1).
    pub verifier: Verifier,
    /// The witness's submission prefix, if given.
    pub url: Option<String>,
}

/// A `log` line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PolicyLog {
    /// Type 0x01 (Ed25519).
    pub verifier: Verifier,
    pub url: Option<String>,
}

/// The witnesses whose valid cosignatures a checkpoint carried, by policy
/// name, with each cosignature's timestamp, in signature-line order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Witnessed {
    pub cosigned_by: Vec<(String, u64)>,
}

/// A witness or a group, by its index in the policy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Member {
    Witness(usize),
    Group(usize),
}

/// A `group` line: met when at least `threshold` members are.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Group {
    name: String,
    threshold: usize,
    members: Vec<Member>,
}

/// Why bytes are not a policy.
#[derive(Debug, Error)]
pub enum PolicyParseError {
    #[error("line {line}: {error}")]
    Line { line: usize, error: PolicyLineError },
    #[error("no quorum line: a policy needs exactly one (`quorum none` requires no cosignatures)")]
    NoQuorum,
}

impl PolicyParseError {
    /// The 1-based line at fault, if the error is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Line { line, .. } => Some(*line),
            Self::NoQuorum => None,
        }
    }
}

/// What is wrong with one line of a policy.
#[derive(Debug, Error)]
pub enum PolicyLineError {
    #[error("control character {byte:#04x} (only tab and newline are allowed)")]
    ControlCharacter { byte: u8 },
    #[error("the last line does not end in a newline")]
    MissingFinalNewline,
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("unknown keyword {keyword:?}: expected log, witness, group or quorum")]
    UnknownKeyword { keyword: String },
    #[error("expected `{usage}`")]
    Usage { usage: &'static str },
    #[error("{role} key: {error}")]
    Key { role: PolicyRole, error: KeyError },
    #[error(
        "a {role} key must be of type {expected}, this one is of type {found:#04x} ({})",
        signature_type_name(.found)
    )]
    KeyType {
        role: PolicyRole,
        expected: SignatureType,
        found: u8,
    },
    #[error("the same public key as the {role} on line {first_line}")]
    DuplicateKey { role: PolicyRole, first_line: usize },
    #[error("key {name}+{key_id} has the same name and key id as the witness on line {first_line}")]
    AmbiguousKeyId {
        name: KeyName,
        key_id: KeyId,
        first_line: usize,
    },
    #[error("{name:?} is already defined on line {first_line}")]
    DuplicateName { name: String, first_line: usize },
    #[error("the name none is predefined (no cosignatures) and cannot be defined")]
    ReservedName,
    #[error("{name:?} is not a witness or group defined on an earlier line")]
    UndefinedName { name: String },
    #[error("none cannot be a group member")]
    NoneAsMember,
    #[error("{name:?} is listed more than once in this group")]
    RepeatedMember { name: String },
    #[error(
        "the threshold must be all, any or a decimal number without leading zeros, not {found:?}"
    )]
    Threshold { found: String },
    #[error("threshold {k} for {n} members: it must be from 1 to {n}")]
    ThresholdOutOfRange { k: u64, n: usize },
    #[error("a second quorum line (the first is on line {first_line})")]
    SecondQuorum { first_line: usize },
    #[error("more than {limit} {}", .role.plural())]
    TooMany { role: PolicyRole, limit: usize },
}

/// What a policy line defines, for error messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PolicyRole {
    Log,
    Witness,
    Group,
}

impl PolicyRole {
    fn plural(self) -> &'static str {
        match self {
            Self::Log => "logs",
            Self::Witness => "witnesses",
            Self::Group => "groups",
        }
    }
}

impl fmt::Display for PolicyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Log => "log",
            Self::Witness => "witness",
            Self::Group => "group",
        })
    }
}

/// The signed-note signature types, for messages about a key of the wrong one.
fn signature_type_name(byte: &u8) -> &'static str {
    match *byte {
        0x01 => "Ed25519",
        0x02 => "ECDSA",
        0x04 => "cosignature/v1",
        0x05 => "RFC 6962 tree head signature",
        0x06 => "ML-DSA-44 cosignature, not supported",
        _ => "unknown",
    }
}

/// Why a checkpoint fails a policy.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum PolicyError {
    #[error("log key {name}+{key_id} is not one of the policy's logs")]
    LogNotInPolicy { name: KeyName, key_id: KeyId },
    #[error("witness {witness}: the cosignature on line {line} is invalid: {error}")]
    InvalidCosignature {
        witness: String,
        line: usize,
        error: SignatureError,
    },
    #[error(transparent)]
    Checkpoint(VerifyError),
    #[error(
        "witness {witness}: cosignature time {timestamp} is more than {MAX_FUTURE_SKEW} s after now ({now})"
    )]
    FutureTimestamp {
        witness: String,
        timestamp: u64,
        now: u64,
    },
    #[error("witness {witness}: cosignature time is zero")]
    ZeroTimestamp { witness: String },
    #[error("quorum not met: {}; {needs}", cosigned_list(.cosigned_by))]
    QuorumNotMet {
        /// The policy witnesses with a valid cosignature.
        cosigned_by: Vec<String>,
        /// The quorum rule, spelled out.
        needs: String,
    },
}

fn cosigned_list(names: &[String]) -> String {
    if names.is_empty() {
        "no policy witness cosigned".to_owned()
    } else {
        format!("cosigned by {}", names.join(", "))
    }
}

/// What is defined so far while parsing, for names, duplicates and limits.
#[derive(Default)]
struct Parser {
    logs: Vec<(PolicyLog, usize)>,
    witnesses: Vec<(PolicyWitness, usize)>,
    groups: Vec<Group>,
    names: BTreeMap<String, (Member, usize)>,
    quorum: Option<(Option<Member>, usize)>,
}

impl WitnessPolicy {
    /// Parses a policy file; see the module docs for the rules.
    pub fn parse(bytes: &[u8]) -> Result<Self, PolicyParseError> {
        let mut parser = Parser::default();
        let mut lines = bytes.split(|&byte| byte == b'\n').enumerate().peekable();
        while let Some((index, line)) = lines.next() {
            let number = index + 1;
            let at = |error| PolicyParseError::Line {
                line: number,
                error,
            };
            // The text after the final newline: nothing, or an unterminated line.
            if lines.peek().is_none() {
                if !line.is_empty() {
                    return Err(at(PolicyLineError::MissingFinalNewline));
                }
                break;
            }
            if let Some(&byte) = line
                .iter()
                .find(|&&byte| (byte < 0x20 && byte != b'\t') || byte == 0x7f)
            {
                return Err(at(PolicyLineError::ControlCharacter { byte }));
            }
            // Blank and comment lines may hold any allowed bytes.
            let first = line.iter().find(|&&byte| byte != b' ' && byte != b'\t');
            if first.is_none_or(|&byte| byte == b'#') {
                continue;
            }
            let line = std::str::from_utf8(line).map_err(|_| at(PolicyLineError::NotUtf8))?;
            parser.line(line, number).map_err(at)?;
        }
        parser.finish()
    }

    /// The witnesses, in file order.
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// The logs, in file order; empty when the log is known from context.
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The witnesses' keys, for [`SignedCheckpoint::verify`].
    pub fn cosigners(&self) -> &Verifiers {
        &self.cosigners
    }

    /// False for `quorum none`.
    pub fn requires_cosignatures(&self) -> bool {
        self.quorum.is_some()
    }

    /// Whether the witnesses named (by policy name) satisfy the quorum.
    /// Names the policy does not define count for nothing.
    pub fn quorum_met<'a>(&self, cosigned: impl IntoIterator<Item = &'a str>) -> bool {
        let mut witnessed = vec![false; self.witnesses.len()];
        for name in cosigned {
            if let Some(index) = self.witnesses.iter().position(|w| w.name == name) {
                witnessed[index] = true;
            }
        }
        self.quorum_met_by(&witnessed)
    }

    /// Checks a signed checkpoint of log `origin`, signed by `log`: the
    /// log's signature (as [`SignedCheckpoint::verify`]; `log` must also be
    /// one of the policy's logs, by public key, if it lists any), every
    /// cosignature from a policy witness (a failing one is an error, as
    /// signed-note says of a known key), each timestamp nonzero and at most
    /// `now + MAX_FUTURE_SKEW`, and the quorum. Other signatures are ignored.
    pub fn verify(
        &self,
        signed: &SignedCheckpoint,
        origin: &str,
        log: &Verifier,
        now: u64,
    ) -> Result<Witnessed, PolicyError> {
        if !self.logs.is_empty()
            && !self
                .logs
                .iter()
                .any(|known| known.verifier.public_key() == log.public_key())
        {
            return Err(PolicyError::LogNotInPolicy {
                name: log.name().clone(),
                key_id: log.key_id(),
            });
        }
        let verified = signed
            .verify(origin, log, &self.cosigners)
            .map_err(|error| self.name_witness(error))?;
        let mut witnessed = vec![false; self.witnesses.len()];
        let mut cosigned_by = Vec::with_capacity(verified.len());
        for signature in verified {
            // `verify` returns only the cosigners', which are the witnesses'.
            let Some(index) = self
                .witnesses
                .iter()
                .position(|witness| &witness.verifier == signature.verifier())
            else {
                continue;
            };
            let witness = &self.witnesses[index];
            // Witness keys are cosignature/v1, whose signatures carry a time.
            let timestamp = signature.timestamp().unwrap_or(0);
            if timestamp == 0 {
                return Err(PolicyError::ZeroTimestamp {
                    witness: witness.name.clone(),
                });
            }
            if timestamp > now.saturating_add(MAX_FUTURE_SKEW) {
                return Err(PolicyError::FutureTimestamp {
                    witness: witness.name.clone(),
                    timestamp,
                    now,
                });
            }
            witnessed[index] = true;
            cosigned_by.push((witness.name.clone(), timestamp));
        }
        if !self.quorum_met_by(&witnessed) {
            return Err(PolicyError::QuorumNotMet {
                cosigned_by: cosigned_by.into_iter().map(|(name, _)| name).collect(),
                needs: self.describe_quorum(),
            });
        }
        Ok(Witnessed { cosigned_by })
    }

    /// A failing signature from a witness's key, named as the policy names it.
    fn name_witness(&self, error: VerifyError) -> PolicyError {
        if let VerifyError::InvalidSignature {
            line,
            name,
            key_id,
            error,
        } = &error
        {
            let witness = self
                .witnesses
                .iter()
                .find(|w| w.verifier.name() == name && w.verifier.key_id() == *key_id);
            if let Some(witness) = witness {
                return PolicyError::InvalidCosignature {
                    witness: witness.name.clone(),
                    line: *line,
                    error: *error,
                };
            }
        }
        PolicyError::Checkpoint(error)
    }

    /// Whether the quorum holds when `witnessed[i]` says witness `i` cosigned.
    fn quorum_met_by(&self, witnessed: &[bool]) -> bool {
        // Groups only name earlier groups, so one pass in file order works.
        let mut groups_met: Vec<bool> = Vec::with_capacity(self.groups.len());
        let is_met = |member: &Member, groups_met: &[bool]| match *member {
            Member::Witness(index) => witnessed.get(index).copied().unwrap_or(false),
            Member::Group(index) => groups_met.get(index).copied().unwrap_or(false),
        };
        for group in &self.groups {
            let met = group
                .members
                .iter()
                .filter(|member| is_met(member, &groups_met))
                .count();
            groups_met.push(met >= group.threshold);
        }
        self.quorum
            .as_ref()
            .is_none_or(|quorum| is_met(quorum, &groups_met))
    }

    /// The quorum rule in words: each group it depends on, once, in file order.
    fn describe_quorum(&self) -> String {
        let Some(quorum) = self.quorum else {
            return "the quorum is none".to_owned();
        };
        let member_name = |member: &Member| match *member {
            Member::Witness(index) => self.witnesses.get(index).map(|w| w.name.as_str()),
            Member::Group(index) => self.groups.get(index).map(|g| g.name.as_str()),
        };
        let mut needed = vec![false; self.groups.len()];
        if let Member::Group(index) = quorum {
            needed[index] = true;
        }
        // Later groups name only earlier ones: mark from the last backwards.
        for index in (0..self.groups.len()).rev() {
            if needed[index] {
                for member in &self.groups[index].members {
                    if let Member::Group(inner) = *member {
                        needed[inner] = true;
                    }
                }
            }
        }
        let rules: Vec<String> = self
            .groups
            .iter()
            .zip(needed)
            .filter(|(_, needed)| *needed)
            .map(|(group, _)| {
                let members: Vec<&str> = group.members.iter().filter_map(member_name).collect();
                format!(
                    "{} needs {} of {}",
                    group.name,
                    group.threshold,
                    members.join(", ")
                )
            })
            .collect();
        let quorum_name = member_name(&quorum).unwrap_or_default();
        match quorum {
            Member::Witness(_) => format!("the quorum needs a cosignature from {quorum_name}"),
            Member::Group(_) => format!("the quorum is {quorum_name}: {}", rules.join("; ")),
        }
    }
}

impl Parser {
    /// One line that is neither blank nor a comment.
    fn line(&mut self, line: &str, number: usize) -> Result<(), PolicyLineError> {
        let items: Vec<&str> = line
            .split([' ', '\t'])
            .filter(|item| !item.is_empty())
            .collect();
        match items.as_slice() {
            ["log", vkey] => self.log(vkey, None, number),
            ["log", vkey, url] => self.log(vkey, Some(*url), number),
            ["log", ..] => Err(PolicyLineError::Usage {
                usage: "log <vkey> [<url>]",
            }),
            ["witness", name, vkey] => self.witness(name, vkey, None, number),
            ["witness", name, vkey, url] => self.witness(name, vkey, Some(*url), number),
            ["witness", ..] => Err(PolicyLineError::Usage {
                usage: "witness <name> <vkey> [<url>]",
            }),
            ["group", name, threshold, members @ ..] if !members.is_empty() => {
                self.group(name, threshold, members, number)
            }
            ["group", ..] => Err(PolicyLineError::Usage {
                usage: "group <name> all|any|<k> <member>...",
            }),
            ["quorum", name] => self.quorum(name, number),
            ["quorum", ..] => Err(PolicyLineError::Usage {
                usage: "quorum <name>",
            }),
            [keyword, ..] => Err(PolicyLineError::UnknownKeyword {
                keyword: (*keyword).to_owned(),
            }),
            [] => Ok(()),
        }
    }

    fn log(&mut self, vkey: &str, url: Option<&str>, number: usize) -> Result<(), PolicyLineError> {
        if self.logs.len() == MAX_POLICY_LOGS {
            return Err(PolicyLineError::TooMany {
                role: PolicyRole::Log,
                limit: MAX_POLICY_LOGS,
            });
        }
        let verifier = parse_key(vkey, PolicyRole::Log, SignatureType::Ed25519)?;
        if let Some((_, first_line)) = self
            .logs
            .iter()
            .find(|(log, _)| log.verifier.public_key() == verifier.public_key())
        {
            return Err(PolicyLineError::DuplicateKey {
                role: PolicyRole::Log,
                first_line: *first_line,
            });
        }
        let url = url.map(str::to_owned);
        self.logs.push((PolicyLog { verifier, url }, number));
        Ok(())
    }

    fn witness(
        &mut self,
        name: &str,
        vkey: &str,
        url: Option<&str>,
        number: usize,
    ) -> Result<(), PolicyLineError> {
        if self.witnesses.len() == MAX_POLICY_WITNESSES {
            return Err(PolicyLineError::TooMany {
                role: PolicyRole::Witness,
                limit: MAX_POLICY_WITNESSES,
            });
        }
        self.check_new_name(name)?;
        let verifier = parse_key(vkey, PolicyRole::Witness, SignatureType::CosignatureV1)?;
        if let Some((_, first_line)) = self
            .witnesses
            .iter()
            .find(|(witness, _)| witness.verifier.public_key() == verifier.public_key())
        {
            return Err(PolicyLineError::DuplicateKey {
                role: PolicyRole::Witness,
                first_line: *first_line,
            });
        }
        let member = Member::Witness(self.witnesses.len());
        self.names.insert(name.to_owned(), (member, number));
        let witness = PolicyWitness {
            name: name.to_owned(),
            verifier,
            url: url.map(str::to_owned),
        };
        self.witnesses.push((witness, number));
        Ok(())
    }

    fn group(
        &mut self,
        name: &str,
        threshold: &str,
        member_names: &[&str],
        number: usize,
    ) -> Result<(), PolicyLineError> {
        if self.groups.len() == MAX_POLICY_GROUPS {
            return Err(PolicyLineError::TooMany {
                role: PolicyRole::Group,
                limit: MAX_POLICY_GROUPS,
            });
        }
        self.check_new_name(name)?;
        let mut members = Vec::with_capacity(member_names.len());
        for (index, &member_name) in member_names.iter().enumerate() {
            if member_name == NONE {
                return Err(PolicyLineError::NoneAsMember);
            }
            let member = self.lookup(member_name)?;
            if member_names[..index].contains(&member_name) {
                return Err(PolicyLineError::RepeatedMember {
                    name: member_name.to_owned(),
                });
            }
            members.push(member);
        }
        let n = members.len();
        let threshold = match threshold {
            "all" => n,
            "any" => 1,
            k => {
                let k = parse_decimal(k).map_err(|_| PolicyLineError::Threshold {
                    found: k.to_owned(),
                })?;
                match usize::try_from(k) {
                    Ok(threshold) if (1..=n).contains(&threshold) => threshold,
                    _ => return Err(PolicyLineError::ThresholdOutOfRange { k, n }),
                }
            }
        };
        let member = Member::Group(self.groups.len());
        self.names.insert(name.to_owned(), (member, number));
        self.groups.push(Group {
            name: name.to_owned(),
            threshold,
            members,
        });
        Ok(())
    }

    fn quorum(&mut self, name: &str, number: usize) -> Result<(), PolicyLineError> {
        if let Some((_, first_line)) = self.quorum {
            return Err(PolicyLineError::SecondQuorum { first_line });
        }
        let quorum = match name {
            NONE => None,
            name => Some(self.lookup(name)?),
        };
        self.quorum = Some((quorum, number));
        Ok(())
    }

    fn check_new_name(&self, name: &str) -> Result<(), PolicyLineError> {
        if name == NONE {
            return Err(PolicyLineError::ReservedName);
        }
        match self.names.get(name) {
            Some(&(_, first_line)) => Err(PolicyLineError::DuplicateName {
                name: name.to_owned(),
                first_line,
            }),
            None => Ok(()),
        }
    }

    fn lookup(&self, name: &str) -> Result<Member, PolicyLineError> {
        self.names
            .get(name)
            .map(|&(member, _)| member)
            .ok_or_else(|| PolicyLineError::UndefinedName {
                name: name.to_owned(),
            })
    }

    fn finish(self) -> Result<WitnessPolicy, PolicyParseError> {
        let (quorum, _) = self.quorum.ok_or(PolicyParseError::NoQuorum)?;
        let cosigners = Verifiers::new(self.witnesses.iter().map(|(w, _)| w.verifier.clone()))
            .map_err(|duplicate| {
                // Distinct public keys whose (name, key id) collide: no
                // signature line could say which of the two made it.
                let mut lines = self.witnesses.iter().filter_map(|(w, line)| {
                    let same = w.verifier.name() == &duplicate.name
                        && w.verifier.key_id() == duplicate.key_id;
                    same.then_some(*line)
                });
                let first_line = lines.next().unwrap_or_default();
                PolicyParseError::Line {
                    line: lines.next().unwrap_or_default(),
                    error: PolicyLineError::AmbiguousKeyId {
                        name: duplicate.name,
                        key_id: duplicate.key_id,
                        first_line,
                    },
                }
            })?;
        Ok(WitnessPolicy {
            logs: self.logs.into_iter().map(|(log, _)| log).collect(),
            witnesses: self.witnesses.into_iter().map(|(w, _)| w).collect(),
            cosigners,
            groups: self.groups,
            quorum,
        })
    }
}

/// A vkey of the type `role` requires.
fn parse_key(
    vkey: &str,
    role: PolicyRole,
    expected: SignatureType,
) -> Result<Verifier, PolicyLineError> {
    let found = match Verifier::parse(vkey) {
        Ok(verifier) if verifier.signature_type() == expected => return Ok(verifier),
        Ok(verifier) => verifier.signature_type().byte(),
        Err(KeyError::UnsupportedSignatureType { found }) => found,
        Err(error) => return Err(PolicyLineError::Key { role, error }),
    };
    Err(PolicyLineError::KeyType {
        role,
        expected,
        found,
    })
}
