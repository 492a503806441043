//! What a URL shows in logs and error messages: the password of its userinfo and the values
//! of query parameters that carry secrets (`?password=`, `?token=`, `?sig=` …) are replaced
//! by `***`; everything else stays, so the message still says which host and database.

/// Query parameters whose value is a secret (compared in lowercase, `-` read as `_`).
const SECRET_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth",
    "authorization",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
    "sig",
    "signature",
    "credential",
    "credentials",
    "sslpassword",
    "x_amz_signature",
    "x_amz_credential",
    "x_amz_security_token",
];

/// Whether a query parameter's value is a secret: a listed name, or one that ends in
/// `password`, `secret`, `token` or `key` (`db_password`, `slack_token`, `private_key` …).
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('-', "_");
    SECRET_PARAMS.contains(&name.as_str())
        || ["password", "secret", "token", "_key", "apikey"]
            .iter()
            .any(|end| name.ends_with(end))
}

/// `url` with its password and secret query values replaced by `***`, safe to print.
///
/// The userinfo ends at the last `@` before the query (a password may hold `@`, and even
/// `/`, when it was not percent-encoded), so nothing of the password is left behind.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before_query, tail) = rest.split_at(query_at);
    let authority_and_path = match before_query.rfind('@') {
        Some(at) => {
            let (userinfo, host) = (&before_query[..at], &before_query[at + 1..]);
            match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{host}"),
                None => before_query.to_owned(),
            }
        }
        None => before_query.to_owned(),
    };
    format!("{scheme}://{authority_and_path}{}", redact_query(tail))
}

/// `?a=1&password=x#frag` → `?a=1&password=***#frag`.
fn redact_query(tail: &str) -> String {
    let Some(query) = tail.strip_prefix('?') else {
        return tail.to_owned();
    };
    let (query, fragment) = match query.find('#') {
        Some(i) => query.split_at(i),
        None => (query, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _value)) if is_secret_param(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("?{}{fragment}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_and_secret_parameters_are_hidden() {
        let table = [
            // (url, shown)
            (
                "postgres://hangar:s3cret@db:5432/hangar",
                "postgres://hangar:***@db:5432/hangar",
            ),
            (
                "postgres://hangar:p@ss@w0rd@db:5432/hangar",
                "postgres://hangar:***@db:5432/hangar",
            ),
            (
                "postgres://hangar:pa/ss@db/hangar",
                "postgres://hangar:***@db/hangar",
            ),
            ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
            (
                "postgres://db/hangar?user=hangar&password=s3cret",
                "postgres://db/hangar?user=hangar&password=***",
            ),
            (
                "postgres://db/hangar?sslmode=require&PASSWORD=s3cret&application_name=x",
                "postgres://db/hangar?sslmode=require&PASSWORD=***&application_name=x",
            ),
            (
                "https://h/x?token=s3cret&access_token=s3cret&api_key=s3cret",
                "https://h/x?token=***&access_token=***&api_key=***",
            ),
            (
                "https://h/x?key=s3cret&secret=s3cret&sig=s3cret#top",
                "https://h/x?key=***&secret=***&sig=***#top",
            ),
            (
                "https://h/x?client_secret=s3cret&db_password=s3cret&api-key=s3cret",
                "https://h/x?client_secret=***&db_password=***&api-key=***",
            ),
            (
                "https://u:s3cret@h/x?email=a@b.c&token=s3cret",
                "https://u:***@h/x?email=a@b.c&token=***",
            ),
            // Nothing secret: unchanged.
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            ("sqlite://hangar.db?mode=rwc", "sqlite://hangar.db?mode=rwc"),
            (
                "https://h/x?page=2&sort=name",
                "https://h/x?page=2&sort=name",
            ),
            ("not a url", "not a url"),
        ];
        for (url, shown) in table {
            let redacted = redact_url(url);
            assert_eq!(redacted, shown, "redact_url({url:?})");
            assert!(!redacted.contains("s3cret"), "{url} leaks: {redacted}");
            assert!(!redacted.contains("w0rd"), "{url} leaks: {redacted}");
        }
    }
}
