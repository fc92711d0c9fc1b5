//! rustls client configuration for each libpq `sslmode`.
//!
//! - `prefer` / `require`: encrypt, but (as libpq) do not verify the server;
//! - `verify-ca`: the chain must lead to a trusted root, any host name;
//! - `verify-full`: chain and host name.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
  CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
  SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::{RootCerts, SslMode, TlsSettings};
use crate::error::StoreError;

pub fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect, StoreError> {
  let provider = Arc::new(rustls::crypto::ring::default_provider());
  let builder = ClientConfig::builder_with_provider(provider.clone())
    .with_safe_default_protocol_versions()
    .map_err(|error| StoreError::connection(format!("TLS setup failed: {error}")))?;
  let verifier: Arc<dyn ServerCertVerifier> = match settings.mode {
    SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(Lenient {
      provider,
      chain: None,
    }),
    SslMode::VerifyCa | SslMode::VerifyFull => {
      let webpki = WebPkiServerVerifier::builder_with_provider(
        Arc::new(root_store(&settings.roots)?),
        provider.clone(),
      )
      .build()
      .map_err(|error| StoreError::connection(format!("TLS setup failed: {error}")))?;
      if settings.mode == SslMode::VerifyCa {
        Arc::new(Lenient {
          provider,
          chain: Some(webpki),
        })
      } else {
        webpki
      }
    }
  };
  let config = builder
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_no_client_auth();
  Ok(MakeRustlsConnect::new(config))
}

fn root_store(roots: &RootCerts) -> Result<RootCertStore, StoreError> {
  let mut store = RootCertStore::empty();
  let pem = match roots {
    RootCerts::Public => {
      store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
      return Ok(store);
    }
    RootCerts::Pem(text) => text.clone().into_bytes(),
    RootCerts::File(path) => std::fs::read(path).map_err(|error| {
      StoreError::validation(
        "sslrootcert",
        format!("cannot read sslrootcert '{path}': {error}"),
      )
    })?,
  };
  for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
    let cert = cert
      .map_err(|error| StoreError::validation("sslrootcert", format!("invalid PEM: {error}")))?;
    store.add(cert).map_err(|error| {
      StoreError::validation("sslrootcert", format!("invalid CA certificate: {error}"))
    })?;
  }
  if store.is_empty() {
    return Err(StoreError::validation(
      "sslrootcert",
      "no certificate found in the CA PEM",
    ));
  }
  Ok(store)
}

/// `sslmode=prefer`/`require` without `chain`: the channel is encrypted, the
/// peer is not checked. `sslmode=verify-ca` with `chain`: the full chain
/// check, minus the host name. Handshake signatures are checked either way.
#[derive(Debug)]
struct Lenient {
  provider: Arc<CryptoProvider>,
  chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Lenient {
  fn verify_server_cert(
    &self,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    server_name: &ServerName<'_>,
    ocsp_response: &[u8],
    now: UnixTime,
  ) -> Result<ServerCertVerified, TlsError> {
    let Some(chain) = &self.chain else {
      return Ok(ServerCertVerified::assertion());
    };
    match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
      Err(TlsError::InvalidCertificate(
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
      )) => Ok(ServerCertVerified::assertion()),
      other => other,
    }
  }

  fn verify_tls12_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> Result<HandshakeSignatureValid, TlsError> {
    crypto::verify_tls12_signature(
      message,
      cert,
      dss,
      &self.provider.signature_verification_algorithms,
    )
  }

  fn verify_tls13_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> Result<HandshakeSignatureValid, TlsError> {
    crypto::verify_tls13_signature(
      message,
      cert,
      dss,
      &self.provider.signature_verification_algorithms,
    )
  }

  fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
    self
      .provider
      .signature_verification_algorithms
      .supported_schemes()
  }
}
