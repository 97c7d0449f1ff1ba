//! A record as the in-memory store holds it ([`super::memory`]): its fields one after the other,
//! numbers little-endian, strings as a 32-bit length and their bytes. Packing is a few copies —
//! encoding it as JSON cost a record ~10,000 instructions, a third of what history cost per
//! notification — and a listing unpacks only the records it reads.

use super::{Outcome, Record};

const OUTCOMES: [Outcome; 4] = [Outcome::Delivered, Outcome::DeadLettered, Outcome::ReceiverRemoved, Outcome::Muted];
/// `http_status` absent.
const NO_STATUS: u32 = u32::MAX;

/// The bytes [`pack`] writes for `record`.
pub fn len(record: &Record) -> usize {
    let string = |text: &String| 4 + text.len();
    let fixed = 5 * 8 + 4 + 4 + 1;
    let texts = [&record.receiver, &record.group_key, &record.status, &record.id].map(string).iter().sum::<usize>();
    let optionals = [&record.tenant, &record.reason, &record.error, &record.thread]
        .map(|o| 1 + o.as_ref().map_or(0, string))
        .iter()
        .sum::<usize>();
    let lists = [&record.fingerprints, &record.alertnames].map(|l| 4 + l.iter().map(string).sum::<usize>());
    fixed + texts + optionals + lists.iter().sum::<usize>()
}

/// Appends `record` to `out`.
pub fn pack(record: &Record, out: &mut Vec<u8>) {
    for number in
        [record.seq, record.alerts as u64, record.accepted_unix_ms, record.finished_unix_ms, record.latency_ms]
    {
        out.extend_from_slice(&number.to_le_bytes());
    }
    out.extend_from_slice(&record.attempts.to_le_bytes());
    out.extend_from_slice(&record.http_status.map_or(NO_STATUS, u32::from).to_le_bytes());
    out.push(OUTCOMES.iter().position(|o| *o == record.outcome).expect("an outcome") as u8);
    for text in [&record.receiver, &record.group_key, &record.status, &record.id] {
        string(out, text);
    }
    for optional in [&record.tenant, &record.reason, &record.error, &record.thread] {
        match optional {
            Some(text) => {
                out.push(1);
                string(out, text);
            }
            None => out.push(0),
        }
    }
    for list in [&record.fingerprints, &record.alertnames] {
        out.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for text in list {
            string(out, text);
        }
    }
}

fn string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// The record `pack` wrote at the start of `bytes` (`None` if they are not one).
pub fn unpack(bytes: &[u8]) -> Option<Record> {
    let mut reader = Reader(bytes);
    let [seq, alerts, accepted_unix_ms, finished_unix_ms, latency_ms] = [(); 5].map(|()| reader.u64());
    let (attempts, http_status) = (reader.u32()?, reader.u32()?);
    let outcome = *OUTCOMES.get(usize::from(reader.byte()?))?;
    let [receiver, group_key, status, id] = [(); 4].map(|()| reader.string());
    let [tenant, reason, error, thread] = [(); 4].map(|()| reader.optional());
    let [fingerprints, alertnames] = [(); 2].map(|()| reader.list());
    Some(Record {
        seq: seq?,
        receiver: receiver?,
        tenant: tenant?,
        group_key: group_key?,
        status: status?,
        alerts: usize::try_from(alerts?).ok()?,
        fingerprints: fingerprints?,
        alertnames: alertnames?,
        id: id?,
        attempts,
        outcome,
        reason: reason?,
        http_status: if http_status == NO_STATUS { None } else { Some(u16::try_from(http_status).ok()?) },
        error: error?,
        thread: thread?,
        accepted_unix_ms: accepted_unix_ms?,
        finished_unix_ms: finished_unix_ms?,
        latency_ms: latency_ms?,
    })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (taken, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(taken)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        self.take(len).and_then(|b| std::str::from_utf8(b).ok()).map(str::to_owned)
    }

    fn optional(&mut self) -> Option<Option<String>> {
        match self.byte()? {
            0 => Some(None),
            1 => self.string().map(Some),
            _ => None,
        }
    }

    fn list(&mut self) -> Option<Vec<String>> {
        let count = self.u32()? as usize;
        // Bounded by what is left: each entry takes at least its length's 4 bytes.
        let mut list = Vec::with_capacity(count.min(self.0.len() / 4));
        for _ in 0..count {
            list.push(self.string()?);
        }
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-z0-9]{1,20}", any::<String>()]
    }

    prop_compose! {
        fn records()(
            numbers in any::<[u64; 5]>(), attempts in any::<u32>(), http_status in any::<Option<u16>>(),
            outcome in 0..4usize, texts in proptest::collection::vec(text(), 4),
            optionals in proptest::collection::vec(proptest::option::of(text()), 4),
            fingerprints in proptest::collection::vec(text(), 0..12), alertnames in proptest::collection::vec(text(), 0..4),
        ) -> Record {
            Record {
                seq: numbers[0], alerts: numbers[1] as usize, accepted_unix_ms: numbers[2],
                finished_unix_ms: numbers[3], latency_ms: numbers[4], attempts, http_status,
                outcome: OUTCOMES[outcome], receiver: texts[0].clone(), group_key: texts[1].clone(),
                status: texts[2].clone(), id: texts[3].clone(), tenant: optionals[0].clone(),
                reason: optionals[1].clone(), error: optionals[2].clone(), thread: optionals[3].clone(),
                fingerprints, alertnames,
            }
        }
    }

    proptest! {
        /// Whatever a record holds, it unpacks as it was packed, and nothing shorter unpacks.
        #[test]
        fn a_record_unpacks_as_it_was_packed(record in records()) {
            let mut packed = Vec::new();
            pack(&record, &mut packed);
            prop_assert_eq!(packed.len(), len(&record));
            prop_assert_eq!(unpack(&packed), Some(record));
            prop_assert_eq!(unpack(&packed[..packed.len() - 1]), None);
        }
    }
}
