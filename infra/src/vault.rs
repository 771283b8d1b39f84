//! [`SecretVault`] over Secrets Manager: what the rotation function and the watchdog call.
//! Every read names its stage (and version), as on AWS; errors never carry a value.

use aws_sdk_secretsmanager::Client;
use wa_core::ports::{SecretVault, VaultError, Versions};
use wa_core::secrets::SecretStage;

use crate::aws::describe;

/// Secrets Manager, for rotations.
#[derive(Debug, Clone)]
pub struct SecretsManagerVault {
    client: Client,
}

impl SecretsManagerVault {
    /// Over `client`.
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn vault_error<E: std::error::Error>(error: &E) -> VaultError {
    VaultError(describe(error))
}

impl SecretVault for SecretsManagerVault {
    async fn versions(&self, secret_id: &str) -> Result<Versions, VaultError> {
        let out = self.client.describe_secret().secret_id(secret_id).send().await.map_err(|e| vault_error(&e))?;
        let mut versions: Vec<(String, Vec<String>)> = out
            .version_ids_to_stages()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        versions.sort();
        Ok(Versions { versions })
    }

    async fn value(
        &self,
        secret_id: &str,
        version: Option<&str>,
        stage: SecretStage,
    ) -> Result<Option<String>, VaultError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_id(version.map(str::to_owned))
            .version_stage(stage.as_aws())
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.secret_string().map(str::to_owned)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(vault_error(&e)),
        }
    }

    async fn put_pending(&self, secret_id: &str, version: &str, value: &str) -> Result<(), VaultError> {
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(version)
            .secret_string(value)
            .version_stages(SecretStage::Pending.as_aws())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| vault_error(&e))
    }

    async fn move_stage(
        &self,
        secret_id: &str,
        stage: SecretStage,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), VaultError> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage.as_aws())
            .set_move_to_version_id(to.map(str::to_owned))
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| vault_error(&e))
    }

    async fn start_rotation(&self, secret_id: &str) -> Result<(), VaultError> {
        self.client.rotate_secret().secret_id(secret_id).send().await.map(|_| ()).map_err(|e| vault_error(&e))
    }
}
