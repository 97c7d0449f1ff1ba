//! Provisioning at start: the streams and the partitions' consumers, made as the config wants
//! them, robustly when several replicas start at once.
//!
//! Replicas of a rollout start together, and on a fresh cluster the first one's requests keep the
//! servers busy creating replicated streams and consumers (each a Raft group of its own) while the
//! others' requests time out, and a server may still be electing its leaders. None of that is a
//! reason to exit: [`provision`] tries again with a growing, jittered pause, saying what it waits
//! for, for as long as the process lives (the relay answers `/-/healthy` meanwhile, and `/-/ready`
//! with 503). Only an answer no retry changes is fatal: a stream of that name, or a consumer, with
//! settings that cannot be updated to the config's (another retention, subjects another stream
//! owns), or settings the servers refuse outright.
//!
//! What already exists with the settings wanted is left alone, not "updated" to the same thing
//! (an update is a replicated proposal the busy servers must agree on): a replica that finds
//! everything as it wants it goes on after four requests (three stream infos, one consumer list).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{self, IntoConsumerConfig};
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;

use crate::metrics as m;

/// The first pause between two tries; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How many consumers are created at once.
const CONSUMERS_AT_ONCE: usize = 8;

/// What the relay needs in JetStream.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The work stream first (the consumers are on it), then the dead-letter and history streams.
    pub streams: Vec<stream::Config>,
    pub consumers: Vec<consumer::pull::Config>,
}

/// Why one try did not finish.
#[derive(Debug)]
enum Failure {
    /// An answer no retry changes; the message for the operator.
    Conflict(String),
    /// Not yet (a timeout, an election, servers still joining); what is waited for.
    Wait(String),
}

/// Makes the streams and consumers as wanted, trying again until done; `Err` only for a
/// conflict (see the module's doc). Returns how many were created or updated.
pub async fn provision(js: &jetstream::Context, wanted: &Wanted) -> Result<usize, String> {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut changed = 0;
    loop {
        // What a try created stays: the next one finds it as wanted and goes on from there.
        match provision_once(js, wanted, &mut changed).await {
            Ok(()) => return Ok(changed),
            Err(Failure::Conflict(message)) => return Err(message),
            Err(Failure::Wait(what)) => {
                metrics::counter!(m::NATS_ERRORS, "operation" => "provision").increment(1);
                let pause = backoff.mul_f64(0.5 + fastrand::f64());
                tracing::warn!(waiting_for = %what, elapsed = ?started.elapsed(), retry_in = ?pause,
                    "JetStream is not ready for this replica yet (servers busy or electing); not ready meanwhile");
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn provision_once(js: &jetstream::Context, wanted: &Wanted, changed: &mut usize) -> Result<(), Failure> {
    for config in &wanted.streams {
        if ensure_stream(js, config).await? {
            *changed += 1;
        }
    }
    let Some(work) = wanted.streams.first() else { return Ok(()) };
    *changed += ensure_consumers(js, &work.name, &wanted.consumers).await?;
    Ok(())
}

/// One try at making a stream as wanted (a reload changing its bounds): true if it was created
/// or updated; `Err` says why not, whether a later try could succeed or not.
pub async fn ensure_stream_once(js: &jetstream::Context, want: &stream::Config) -> Result<bool, String> {
    ensure_stream(js, want).await.map_err(|e| match e {
        Failure::Conflict(message) | Failure::Wait(message) => message,
    })
}

/// Creates the stream, or updates it when its settings differ; true if it did either.
async fn ensure_stream(js: &jetstream::Context, want: &stream::Config) -> Result<bool, Failure> {
    let name = &want.name;
    let conflict = |e: &dyn std::fmt::Display| {
        format!(
            "cannot create or update the JetStream stream {name:?}: {e} (a stream of that name with another \
             retention or subjects must be removed, or choose another delivery.nats.stream)"
        )
    };
    let result = match js.get_stream(name).await {
        Ok(existing) if same_stream(&existing.cached_info().config, want) => return Ok(false),
        Ok(_) => js.update_stream(want).await.map(drop),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                js.create_stream(want.clone()).await.map(drop)
            }
            _ => return Err(Failure::Wait(format!("the stream {name:?}: {e}"))),
        },
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) => match e.kind() {
            // Created meanwhile by another replica: the next try compares it with the config.
            CreateStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NAME_EXIST => {
                Err(Failure::Wait(format!("the stream {name:?}, created meanwhile by another replica")))
            }
            CreateStreamErrorKind::JetStream(j) if is_conflict(j.error_code()) => Err(Failure::Conflict(conflict(&e))),
            CreateStreamErrorKind::EmptyStreamName
            | CreateStreamErrorKind::InvalidStreamName
            | CreateStreamErrorKind::DomainAndExternalSet => Err(Failure::Conflict(conflict(&e))),
            _ => Err(Failure::Wait(format!("the stream {name:?}: {e}"))),
        },
    }
}

/// Creates the consumers missing or with other settings (an update of what can be edited, such
/// as `ack_wait`); returns how many.
async fn ensure_consumers(
    js: &jetstream::Context,
    stream_name: &str,
    wanted: &[consumer::pull::Config],
) -> Result<usize, Failure> {
    let waiting = |e: &dyn std::fmt::Display| Failure::Wait(format!("the consumers of {stream_name:?}: {e}"));
    let stream = js.get_stream(stream_name).await.map_err(|e| waiting(&e))?;
    let mut existing: HashMap<String, consumer::Config> = HashMap::new();
    let mut list = stream.consumers();
    while let Some(info) = list.next().await {
        let info = info.map_err(|e| waiting(&e))?;
        existing.insert(info.name, info.config);
    }
    let missing: Vec<&consumer::pull::Config> = wanted
        .iter()
        .filter(|want| {
            let name = want.durable_name.as_deref().unwrap_or_default();
            !existing.get(name).is_some_and(|have| same_consumer(have, &(*want).clone().into_consumer_config()))
        })
        .collect();
    // A few at a time: each is a Raft group the servers create, and most of its time is their
    // round trips, not their work.
    let mut creating = futures_util::stream::iter(missing)
        .map(|want| async {
            let name = want.durable_name.clone().unwrap_or_default();
            stream.create_consumer(want.clone()).await.map(drop).map_err(|e| (name, e))
        })
        .buffer_unordered(CONSUMERS_AT_ONCE);
    let mut changed = 0;
    while let Some(result) = creating.next().await {
        if let Err((name, e)) = result {
            let code = match e.kind() {
                stream::ConsumerErrorKind::JetStream(j) => Some(j.error_code()),
                _ => None,
            };
            let message = format!("cannot create or update the JetStream consumer {name}: {e}");
            return Err(match code {
                Some(code) if is_conflict(code) => Failure::Conflict(message),
                _ => Failure::Wait(format!("the consumer {name} ({changed} created or updated so far): {e}")),
            });
        }
        changed += 1;
    }
    Ok(changed)
}

/// JetStream's answers that say the config cannot be had as asked, whatever the wait: a stream
/// or consumer of that name with settings that cannot be updated, subjects another stream owns,
/// replicas the servers cannot have, settings refused. Everything else (timeouts, no leader,
/// too few peers yet, a cluster still forming) is waited out.
fn is_conflict(code: ErrorCode) -> bool {
    [
        ErrorCode::STREAM_NAME_EXIST,
        ErrorCode::STREAM_SUBJECT_OVERLAP,
        ErrorCode::STREAM_INVALID_CONFIG,
        ErrorCode::STREAM_UPDATE,
        ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED,
        ErrorCode::STREAM_REPLICAS_NOT_UPDATABLE,
        ErrorCode::STREAM_MISMATCH,
        ErrorCode::CONSUMER_NAME_EXIST,
        ErrorCode::CONSUMER_DURABLE_NAME_NOT_MATCH_SUBJECT,
        ErrorCode::JETSTREAM_NOT_ENABLED,
        ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT,
    ]
    .contains(&code)
}

/// An unlimited limit is 0 in a config we build and -1 in what the server answers.
fn limit(value: i64) -> i64 {
    if value <= 0 { -1 } else { value }
}

/// Whether the server's stream has every setting amrelay asks for.
fn same_stream(have: &stream::Config, want: &stream::Config) -> bool {
    let mut have_subjects = have.subjects.clone();
    let mut want_subjects = want.subjects.clone();
    have_subjects.sort_unstable();
    want_subjects.sort_unstable();
    have_subjects == want_subjects
        && have.retention == want.retention
        && have.storage == want.storage
        && have.num_replicas == want.num_replicas.max(1)
        && have.discard == want.discard
        && have.description == want.description
        && limit(have.max_bytes) == limit(want.max_bytes)
        && limit(have.max_messages) == limit(want.max_messages)
        && have.max_age == want.max_age
        && (want.duplicate_window.is_zero() || have.duplicate_window == want.duplicate_window)
}

/// Whether the server's consumer has every setting amrelay asks for.
fn same_consumer(have: &consumer::Config, want: &consumer::Config) -> bool {
    have.durable_name == want.durable_name
        && have.description == want.description
        && have.filter_subject == want.filter_subject
        && have.ack_policy == want.ack_policy
        && have.ack_wait == want.ack_wait
        && have.max_ack_pending == want.max_ack_pending
        && have.max_deliver == want.max_deliver
        && have.deliver_policy == want.deliver_policy
        && (want.num_replicas == 0 || have.num_replicas == want.num_replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted_stream() -> stream::Config {
        stream::Config {
            name: "AMRELAY".into(),
            subjects: vec!["AMRELAY.p.*".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            num_replicas: 3,
            duplicate_window: Duration::from_secs(120),
            max_bytes: 1 << 30,
            ..Default::default()
        }
    }

    /// What the server answers for a stream made from the wanted config: limits filled in.
    #[test]
    fn a_stream_as_the_server_reports_it_is_the_same_as_wanted() {
        let want = wanted_stream();
        let have = stream::Config { max_messages: -1, max_messages_per_subject: -1, ..want.clone() };
        assert!(same_stream(&have, &want));
        assert!(!same_stream(&stream::Config { retention: stream::RetentionPolicy::Limits, ..have.clone() }, &want));
        assert!(!same_stream(&stream::Config { max_bytes: 1 << 20, ..have.clone() }, &want));
        assert!(!same_stream(&stream::Config { num_replicas: 1, ..have }, &want));
    }

    #[test]
    fn a_consumer_with_another_ack_wait_is_updated() {
        let want = consumer::pull::Config {
            durable_name: Some("amrelay-p0".into()),
            filter_subject: "AMRELAY.p.0".into(),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1,
            max_deliver: -1,
            ..Default::default()
        }
        .into_consumer_config();
        let have = consumer::Config { name: Some("amrelay-p0".into()), max_waiting: 512, ..want.clone() };
        assert!(same_consumer(&have, &want));
        assert!(!same_consumer(&consumer::Config { ack_wait: Duration::from_secs(5), ..have }, &want));
    }

    #[test]
    fn only_settings_no_wait_changes_are_conflicts() {
        assert!(is_conflict(ErrorCode::STREAM_SUBJECT_OVERLAP));
        for transient in
            [ErrorCode::CLUSTER_NOT_AVAILABLE, ErrorCode::CLUSTER_NO_PEERS, ErrorCode::INSUFFICIENT_RESOURCES]
        {
            assert!(!is_conflict(transient), "{transient:?}");
        }
    }
}
