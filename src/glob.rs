//! Shell-style wildcard matching, for the names users write patterns over:
//! scan service names (`-p 'http*'`) and IRC ban masks (`*!*@host`).

/// Whether `text` matches `pattern`, where `*` is any run of bytes and `?`
/// any one byte. The greedy walk that, on a mismatch, lets the last `*`
/// swallow one more byte: linear in practice, never recursive, so a
/// hostile pattern cannot blow the stack.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text position it is tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}
