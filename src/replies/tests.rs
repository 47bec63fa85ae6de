use std::convert::Infallible;

use http_body_util::BodyExt;

use super::*;
use crate::dvv::upload;

fn bounds(max_file: u64, max_total: u64) -> RelayBounds {
    RelayBounds {
        limits: ReplyLimits {
            max_body_chars: 100,
            max_file_bytes: max_file,
            max_files: 2,
            max_total_bytes: max_total,
        },
        accepted: vec!["application/pdf".into(), "text/plain".into()],
        read_idle: Duration::from_secs(5),
        write_idle: Duration::from_secs(5),
    }
}

/// One part of a test form: name, (file name, media type) for a file, content.
type TestPart<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

fn form(parts: &[TestPart<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, data) in parts {
        out.extend_from_slice(b"--in\r\n");
        match file {
            Some((file_name, media_type)) => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: {media_type}\r\n\r\n").as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--in--\r\n");
    out
}

/// Runs the relay over `input` in small chunks; answers its result and what DVV would have read.
async fn run(
    input: Vec<u8>,
    bounds: &RelayBounds,
) -> (
    Result<Vec<PartTally>, RelayError>,
    Result<Bytes, upload::UploadAborted>,
) {
    let chunks: Vec<Result<Bytes, Infallible>> = input
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let (tx, body) = upload::channel();
    let reader = tokio::spawn(async move { body.collect().await.map(|c| c.to_bytes()) });
    let result = relay(
        futures_util::stream::iter(chunks),
        "in".into(),
        tx,
        "out",
        bounds,
    )
    .await;
    (result, reader.await.unwrap())
}

#[tokio::test]
async fn a_reply_is_re_encoded_whole_with_sizes_and_hashes_of_each_part() {
    let pdf = vec![7u8; 1000];
    let input = form(&[
        ("body", None, "Hyvä virkailija".as_bytes()),
        ("file", Some(("liite.pdf", "application/pdf")), &pdf),
    ]);
    let (result, sent) = run(input, &bounds(10_000, 10_000)).await;
    let tally = result.unwrap();
    assert_eq!(tally.len(), 2);
    assert_eq!(tally[0].kind, PartKind::Text);
    assert_eq!(tally[0].size, "Hyvä virkailija".len() as u64);
    assert_eq!(tally[1].size, 1000);
    assert_eq!(tally[1].sha256, hex::encode(Sha256::digest(&pdf)));
    // What DVV receives parses back to the same parts.
    let sent = sent.expect("a finished upload");
    let stream = futures_util::stream::iter([Ok::<_, Infallible>(sent)]);
    let mut parsed = multer::Multipart::new(stream, "out");
    let body = parsed.next_field().await.unwrap().unwrap();
    assert_eq!(body.name(), Some("body"));
    assert_eq!(body.text().await.unwrap(), "Hyvä virkailija");
    let file = parsed.next_field().await.unwrap().unwrap();
    assert_eq!(file.file_name(), Some("liite.pdf"));
    assert_eq!(
        file.content_type().unwrap().essence_str(),
        "application/pdf"
    );
    assert_eq!(&file.bytes().await.unwrap()[..], &pdf[..]);
    assert!(parsed.next_field().await.unwrap().is_none());
}

#[tokio::test]
async fn a_limit_broken_mid_stream_aborts_the_upload_to_dvv() {
    let big = vec![1u8; 2000];
    let input = form(&[
        ("body", None, b"hello"),
        ("file", Some(("a.pdf", "application/pdf")), &big),
    ]);
    let (result, sent) = run(input.clone(), &bounds(1500, 10_000)).await;
    assert_eq!(result, Err(RelayError::TooLarge("file size")));
    assert!(
        sent.is_err(),
        "DVV must see an aborted upload, not a complete one"
    );
    let (result, sent) = run(input, &bounds(10_000, 1999)).await;
    assert_eq!(result, Err(RelayError::TooLarge("total size")));
    assert!(sent.is_err());
}

#[tokio::test]
async fn refused_shapes_and_types_abort_too() {
    let cases: Vec<(Vec<u8>, RelayError)> = vec![
        (
            form(&[("file", Some(("a.pdf", "application/pdf")), b"x")]),
            RelayError::Malformed("a reply is one body part followed by file parts"),
        ),
        (
            form(&[
                ("body", None, b"hi"),
                ("file", Some(("a.exe", "application/x-msdownload")), b"MZ"),
            ]),
            RelayError::TypeNotAccepted,
        ),
        (
            form(&[("body", None, &[b'x'; 101])]),
            RelayError::TooLarge("text"),
        ),
        (
            form(&[
                ("body", None, b"hi"),
                ("file", Some(("a.pdf", "application/pdf")), b"1"),
                ("file", Some(("b.pdf", "application/pdf")), b"2"),
                ("file", Some(("c.pdf", "application/pdf")), b"3"),
            ]),
            RelayError::TooLarge("file count"),
        ),
    ];
    for (input, expected) in cases {
        let (result, sent) = run(input, &bounds(10_000, 10_000)).await;
        assert_eq!(result, Err(expected));
        assert!(sent.is_err());
    }
    // A body cut short by the operator's client.
    let mut cut = form(&[
        ("body", None, b"hi"),
        ("file", Some(("a.pdf", "application/pdf")), &[0u8; 500]),
    ]);
    cut.truncate(cut.len() - 100);
    let (result, sent) = run(cut, &bounds(10_000, 10_000)).await;
    assert_eq!(result, Err(RelayError::ClientGone));
    assert!(sent.is_err());
}

#[tokio::test]
async fn an_empty_file_input_of_a_browser_form_is_skipped() {
    let input = form(&[
        ("body", None, b"ei liitetta"),
        ("file", Some(("", "application/octet-stream")), b""),
    ]);
    let (result, sent) = run(input, &bounds(10, 10)).await;
    assert_eq!(result.unwrap().len(), 1, "the text only");
    assert!(sent.is_ok());
}

#[test]
fn the_declared_length_ceiling_and_the_receipt_check() {
    let limits = ReplyLimits {
        max_body_chars: 10,
        max_file_bytes: 100,
        max_files: 2,
        max_total_bytes: 150,
    };
    assert_eq!(max_request_bytes(&limits), 40 + 150 + 3 * 1024);
    assert!(media_type_accepted(
        &["application/pdf".into()],
        "Application/PDF; x=y"
    ));
    assert!(!media_type_accepted(&["application/pdf".into()], ""));
}
