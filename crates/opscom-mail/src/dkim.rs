//! DKIM signing of the reports: [`DkimSigner`], loaded once from a PEM private key file and shared
//! (`Arc`) by every message composed with it.

use std::fmt;
use std::path::{Path, PathBuf};

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;

use crate::encoding::{base64_decode, base64_encode};

/// The headers a signature covers. A header a message lacks is simply not hashed.
const SIGNED_HEADERS: [&str; 11] = [
    "From",
    "Reply-To",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Auto-Submitted",
    "X-OPSCOM-Report",
];

/// DER object identifiers of the key algorithms (tag, length and value).
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// What a key file must hold, said in every key error.
const KEY_FIX: &str = "give the PEM file of an unencrypted RSA private key (\"BEGIN RSA PRIVATE KEY\" \
     or \"BEGIN PRIVATE KEY\"; 2048 bits or more) or Ed25519 private key (\"BEGIN PRIVATE KEY\"), \
     e.g. made with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem`, \
     and publish its public key as `SELECTOR._domainkey.DOMAIN`";

/// The DKIM key or its settings cannot be used. Each error names the file or value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// The key file cannot be read.
    #[error(
        "cannot read the DKIM key file {path}: {source}. Fix: check the path, and that the user \
         the importer runs as can read the file"
    )]
    Read {
        /// The key file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The key file holds no usable private key.
    #[error("the DKIM key file {path} cannot be used: {problem}. Fix: {KEY_FIX}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The selector or domain is not a DNS name.
    #[error(
        "DKIM {field} = {value:?} is not valid: {problem}. Fix: give the {field} as published \
         in DNS (`SELECTOR._domainkey.DOMAIN`), e.g. selector \"opscom\" and domain \"example.com\""
    )]
    Name {
        /// `selector` or `domain`.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// The key algorithm of a [`DkimSigner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// `rsa-sha256`.
    Rsa,
    /// `ed25519-sha256` (RFC 8463).
    Ed25519,
}

impl DkimAlgorithm {
    /// The name used in the signature's `a=` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Rsa => "rsa-sha256",
            DkimAlgorithm::Ed25519 => "ed25519-sha256",
        }
    }
}

/// Signs composed messages with DKIM (relaxed/relaxed canonicalization; the headers From,
/// Reply-To, To, Subject, Date, Message-ID, MIME-Version, Content-Type, Content-Transfer-Encoding,
/// Auto-Submitted and X-OPSCOM-Report).
///
/// Give it to [`crate::ComposeOptions::dkim`]; [`crate::compose`] signs before formatting, and
/// the spool keeps the signed bytes unchanged. Its `Debug` shows the selector, domain, algorithm
/// and key file, never the key.
pub struct DkimSigner {
    config: DkimConfig,
    selector: String,
    domain: String,
    algorithm: DkimAlgorithm,
    key_file: PathBuf,
}

impl fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSigner")
            .field("selector", &self.selector)
            .field("domain", &self.domain)
            .field("algorithm", &self.algorithm)
            .field("key_file", &self.key_file)
            .field("key", &"<hidden>")
            .finish()
    }
}

impl DkimSigner {
    /// Loads the private key in the PEM file `key_file`: RSA (PKCS#1 `BEGIN RSA PRIVATE KEY` or
    /// PKCS#8 `BEGIN PRIVATE KEY`) or Ed25519 (PKCS#8). The signature says `d=domain; s=selector`.
    pub fn from_pem_file(
        key_file: impl AsRef<Path>,
        selector: &str,
        domain: &str,
    ) -> Result<Self, DkimError> {
        let path = key_file.as_ref().to_owned();
        check_name("selector", selector)?;
        check_name("domain", domain)?;
        let text = std::fs::read_to_string(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::InvalidData => DkimError::Key {
                path: path.clone(),
                problem: "it is not a text (PEM) file".to_owned(),
            },
            _ => DkimError::Read {
                path: path.clone(),
                source,
            },
        })?;
        let key_error = |problem: String| DkimError::Key {
            path: path.clone(),
            problem,
        };
        let (algorithm, key) = signing_key(&text).map_err(key_error)?;
        let headers = SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect();
        let config = DkimConfig::new(
            selector.to_owned(),
            domain.to_owned(),
            key,
            headers,
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        );
        Ok(DkimSigner {
            config,
            selector: selector.to_owned(),
            domain: domain.to_owned(),
            algorithm,
            key_file: path,
        })
    }

    /// The selector (`s=`).
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The signing domain (`d=`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> DkimAlgorithm {
        self.algorithm
    }

    /// The PEM file the key was loaded from.
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// Adds the `DKIM-Signature` header to `message`.
    pub(crate) fn sign(&self, message: &mut lettre::Message) {
        message.sign(&self.config);
    }
}

fn check_name(field: &'static str, value: &str) -> Result<(), DkimError> {
    let problem = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > 253 {
        Some("it is longer than 253 characters")
    } else if !value
        .split('.')
        .all(|label| !label.is_empty() && label.len() <= 63)
    {
        Some("it has an empty or too long part between dots")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        Some("only letters, digits, '-', '_' and '.' are allowed")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(DkimError::Name {
            field,
            value: value.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// The key in the PEM text `text`, or what is wrong with it (never quoting the key).
fn signing_key(text: &str) -> Result<(DkimAlgorithm, DkimSigningKey), String> {
    let (label, der) = pem_block(text)?;
    match label.as_str() {
        "RSA PRIVATE KEY" => rsa_key(&der),
        "PRIVATE KEY" => {
            let (algorithm, inner) = pkcs8(&der)?;
            match algorithm {
                DkimAlgorithm::Rsa => rsa_key(inner),
                DkimAlgorithm::Ed25519 => {
                    // The PKCS#8 key is an OCTET STRING holding the 32-byte seed.
                    let seed = match der_read(inner) {
                        Some((0x04, seed, [])) if seed.len() == 32 => seed,
                        _ => return Err("its Ed25519 key is not a 32-byte seed".to_owned()),
                    };
                    let key =
                        DkimSigningKey::new(&base64_encode(seed), DkimSigningAlgorithm::Ed25519)
                            .map_err(|e| format!("its Ed25519 key is not valid ({e})"))?;
                    Ok((DkimAlgorithm::Ed25519, key))
                }
            }
        }
        "ENCRYPTED PRIVATE KEY" => Err("the key is encrypted with a password; the importer \
                                        needs it unencrypted (readable only by the importer's user)"
            .to_owned()),
        other => Err(format!(
            "it holds a \"{other}\" block, not an RSA or Ed25519 private key"
        )),
    }
}

fn rsa_key(pkcs1_der: &[u8]) -> Result<(DkimAlgorithm, DkimSigningKey), String> {
    let mut pem = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    let encoded = base64_encode(pkcs1_der);
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END RSA PRIVATE KEY-----\n");
    let key = DkimSigningKey::new(&pem, DkimSigningAlgorithm::Rsa)
        .map_err(|e| format!("its RSA key is not valid ({e})"))?;
    Ok((DkimAlgorithm::Rsa, key))
}

/// The first PEM block's label and bytes.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| {
            l.strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
        })
        .ok_or_else(|| "it holds no PEM block (\"-----BEGIN ...-----\")".to_owned())?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            // RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`): an encrypted traditional key.
            return Err(
                "the key is encrypted with a password; the importer needs it \
                        unencrypted (readable only by the importer's user)"
                    .to_owned(),
            );
        }
        body.push_str(line);
    }
    if !ended {
        return Err(format!("its \"{label}\" block has no END line"));
    }
    let der = base64_decode(&body).ok_or_else(|| format!("its \"{label}\" block is not base64"))?;
    Ok((label, der))
}

/// A PKCS#8 PrivateKeyInfo: the algorithm and the inner key's bytes.
fn pkcs8(der: &[u8]) -> Result<(DkimAlgorithm, &[u8]), String> {
    let broken = || "its PKCS#8 key is damaged".to_owned();
    let (tag, info, _) = der_read(der).ok_or_else(broken)?;
    if tag != 0x30 {
        return Err(broken());
    }
    let (tag, _version, rest) = der_read(info).ok_or_else(broken)?;
    if tag != 0x02 {
        return Err(broken());
    }
    let (tag, algorithm_id, rest) = der_read(rest).ok_or_else(broken)?;
    if tag != 0x30 {
        return Err(broken());
    }
    let algorithm = if algorithm_id.starts_with(OID_RSA) {
        DkimAlgorithm::Rsa
    } else if algorithm_id.starts_with(OID_ED25519) {
        DkimAlgorithm::Ed25519
    } else {
        return Err("it is neither an RSA nor an Ed25519 key (an EC key?)".to_owned());
    };
    let (tag, key, _) = der_read(rest).ok_or_else(broken)?;
    if tag != 0x04 {
        return Err(broken());
    }
    Ok((algorithm, key))
}

/// One DER element: tag, contents, and what follows.
fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_short_and_long() {
        assert_eq!(
            der_read(&[0x04, 0x02, 1, 2, 9]),
            Some((0x04, &[1u8, 2][..], &[9u8][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        assert_eq!(der_read(&long).unwrap().1.len(), 0x80);
        assert_eq!(der_read(&[0x04, 0x05, 1]), None);
    }

    #[test]
    fn errors_name_the_file_and_the_fix_but_not_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dkim.pem");
        std::fs::write(
            &path,
            "-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = DkimSigner::from_pem_file(&path, "opscom", "acme.edu")
            .unwrap_err()
            .to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("EC PRIVATE KEY") && e.contains("Fix:"), "{e}");
        assert!(!e.contains("c2VjcmV0"), "{e}");

        let missing = dir.path().join("absent.pem");
        let e = DkimSigner::from_pem_file(&missing, "opscom", "acme.edu")
            .unwrap_err()
            .to_string();
        assert!(e.contains("absent.pem") && e.contains("Fix:"), "{e}");

        let e = DkimSigner::from_pem_file(&path, "ops com", "acme.edu")
            .unwrap_err()
            .to_string();
        assert!(e.contains("selector") && e.contains("Fix:"), "{e}");
    }

    #[test]
    fn an_ed25519_pkcs8_key_loads_and_debug_hides_it() {
        // RFC 8410 section 10.3's example private key.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ed.pem");
        std::fs::write(&path, pem).unwrap();
        let signer = DkimSigner::from_pem_file(&path, "opscom", "acme.edu").unwrap();
        assert_eq!(signer.algorithm(), DkimAlgorithm::Ed25519);
        let debug = format!("{signer:?}");
        assert!(
            debug.contains("opscom") && debug.contains("<hidden>"),
            "{debug}"
        );
        assert!(
            !debug.contains("MC4CAQAw") && !debug.contains("1O5y2/kTWErVttjx"),
            "{debug}"
        );
        assert!(!debug.contains("SigningKey"), "{debug}");
    }
}
