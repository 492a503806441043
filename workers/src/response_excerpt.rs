//! The excerpt of a response body that an attempt records (`HTTP 500: <excerpt>`): read chunk
//! by chunk and never past the cap, so an endless or huge body costs neither memory nor time;
//! the rest is dropped unread with the connection.

/// At most `cap` bytes of `response`'s body as text (lossy UTF-8), with `…` when there was more.
/// A body that breaks off (timeout, reset) keeps what arrived.
pub async fn read_excerpt(mut response: reqwest::Response, cap: usize) -> String {
    let mut bytes: Vec<u8> = Vec::with_capacity(cap.min(4096));
    let mut more = false;
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            more = true;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    // A cut in the middle of a character would show as a replacement character: drop it.
    let mut text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let valid = error.utf8_error().valid_up_to();
            let bytes = error.into_bytes();
            if more && bytes.len() - valid < 4 {
                String::from_utf8_lossy(&bytes[..valid]).into_owned()
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    };
    if more {
        text.push('…');
    }
    text
}
