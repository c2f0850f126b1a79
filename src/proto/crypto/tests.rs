use super::*;

fn pair(dialer: &[u8], listener: &[&[u8]]) -> Result<(Session, Session, usize), CryptoError> {
    let keys: Vec<Vec<u8>> = listener.iter().map(|k| k.to_vec()).collect();
    let (init, first) = Initiator::start(dialer, "lab", b"hellos");
    let (theirs, answer, used) = respond(&keys, "lab", b"hellos", &first)?;
    Ok((init.finish(&answer)?, theirs, used))
}

fn roundtrip(from: &mut Sealer, to: &mut Opener, plain: &[u8]) -> Vec<u8> {
    let mut wire = BytesMut::new();
    from.seal(plain, &mut wire).unwrap();
    let mut out = BytesMut::new();
    while to.open(&mut wire, &mut out).unwrap() {}
    assert!(wire.is_empty(), "every record was consumed");
    out.to_vec()
}

#[test]
fn both_directions_carry_frames_after_the_exchange() {
    let (mut d, mut l, used) = pair(b"s3cret", &[b"s3cret"]).unwrap();
    assert_eq!(used, 0);
    assert_eq!(
        roundtrip(&mut d.seal, &mut l.open, b"call add"),
        b"call add"
    );
    assert_eq!(roundtrip(&mut l.seal, &mut d.open, b"reply 3"), b"reply 3");
    // The counters advance: a second record in each direction still opens.
    assert_eq!(roundtrip(&mut d.seal, &mut l.open, b"again"), b"again");
}

#[test]
fn a_wrong_secret_is_refused_by_name() {
    let err = pair(b"mine", &[b"theirs"]).err().unwrap();
    assert_eq!(err, CryptoError::WrongSecret);
    assert!(err.to_string().starts_with("wrong shared secret"), "{err}");
    // Another cluster with the same secret is another key.
    let (_, first) = Initiator::start(b"s", "lab", b"p");
    let e = respond(&[b"s".to_vec()], "other", b"p", &first)
        .err()
        .unwrap();
    assert_eq!(e, CryptoError::WrongSecret);
    // So is another prologue (an altered hello).
    let e = respond(&[b"s".to_vec()], "lab", b"q", &first)
        .err()
        .unwrap();
    assert_eq!(e, CryptoError::WrongSecret);
}

#[test]
fn the_listener_accepts_any_key_of_its_ring_and_says_which() {
    let (mut d, mut l, used) = pair(b"new", &[b"old", b"new"]).unwrap();
    assert_eq!(used, 1);
    assert_eq!(roundtrip(&mut d.seal, &mut l.open, b"x"), b"x");
}

#[test]
fn a_dialer_refuses_an_answer_made_with_another_key() {
    let (init, first) = Initiator::start(b"a", "lab", b"p");
    let (_, first_b) = Initiator::start(b"b", "lab", b"p");
    let (_, answer_b, _) = respond(&[b"b".to_vec()], "lab", b"p", &first_b).unwrap();
    assert!(respond(&[b"a".to_vec()], "lab", b"p", &first).is_ok());
    assert_eq!(init.finish(&answer_b).err(), Some(CryptoError::WrongSecret));
}

#[test]
fn large_frames_span_records_and_arrive_whole() {
    let (mut d, mut l, _) = pair(b"s", &[b"s"]).unwrap();
    let big: Vec<u8> = (0..(3 * RECORD_PLAIN + 17)).map(|i| i as u8).collect();
    let mut wire = BytesMut::new();
    d.seal.seal(&big, &mut wire).unwrap();
    assert_eq!(wire.len(), big.len() + 4 * (RECORD_HEADER + AEAD_TAG));
    // Fed a few bytes at a time, as a socket does.
    let mut src = BytesMut::new();
    let mut out = BytesMut::new();
    for chunk in wire.chunks(1000) {
        src.extend_from_slice(chunk);
        while l.open.open(&mut src, &mut out).unwrap() {}
    }
    assert_eq!(&out[..], &big[..]);
}

#[test]
fn any_altered_byte_is_detected() {
    let k = [5u8; 32];
    let mut wire = BytesMut::new();
    Sealer::new(&k)
        .seal(b"publish sensors.kitchen 21.5", &mut wire)
        .unwrap();
    for at in RECORD_HEADER..wire.len() {
        let mut l = Opener::new(&k);
        let mut t = wire.clone();
        t[at] ^= 0x40;
        let mut out = BytesMut::new();
        assert_eq!(
            l.open(&mut t, &mut out),
            Err(CryptoError::Tampered),
            "byte {at}"
        );
        assert!(
            out.is_empty(),
            "nothing of a tampered record is let through"
        );
    }
}

#[test]
fn replayed_or_reordered_records_are_refused() {
    let k = [9u8; 32];
    let (mut s, mut o) = (Sealer::new(&k), Opener::new(&k));
    let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
    s.seal(b"first", &mut a).unwrap();
    s.seal(b"second", &mut b).unwrap();
    let mut out = BytesMut::new();
    let mut b2 = b.clone();
    assert_eq!(o.open(&mut b2, &mut out), Err(CryptoError::Tampered));
    let mut a2 = a.clone();
    assert_eq!(o.open(&mut a2, &mut out), Ok(true));
    let mut a3 = a.clone();
    assert_eq!(o.open(&mut a3, &mut out), Err(CryptoError::Tampered));
}

#[test]
fn a_bad_record_length_is_refused_before_buffering() {
    let mut o = Opener::new(&[1; 32]);
    let mut src = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
    let err = o.open(&mut src, &mut BytesMut::new()).unwrap_err();
    assert!(matches!(err, CryptoError::BadRecord(_)), "{err}");
    let mut src = BytesMut::from(&[0u8, 0, 0, 3, 1, 2, 3][..]);
    assert!(o.open(&mut src, &mut BytesMut::new()).is_err());
}

#[test]
fn datagram_keys_open_only_their_own_and_check_the_header() {
    let a = DatagramKey::new(b"a", b"cluster1");
    let mut d = Vec::new();
    a.seal(b"header", b"gossip", &mut d);
    assert_eq!(a.open(b"header", &d).as_deref(), Some(&b"gossip"[..]));
    assert!(a.open(b"headex", &d).is_none());
    assert!(DatagramKey::new(b"b", b"cluster1")
        .open(b"header", &d)
        .is_none());
    assert!(DatagramKey::new(b"a", b"cluster2")
        .open(b"header", &d)
        .is_none());
    assert!(a.open(b"header", &d[..10]).is_none());
}

#[test]
fn fingerprints_are_stable_short_and_differ() {
    assert_eq!(fingerprint(b"a"), fingerprint(b"a"));
    assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    assert_eq!(fingerprint(b"a").len(), 16);
}
