//! `hangar alerts channels add|list|remove|test`: the channels alerts are delivered to.
//! Listings never show a secret (only the channel's host); a generated webhook secret is
//! shown once, on add.

use std::sync::Arc;

use hangar_workers::alerts::deliver::send_test;
use hangar_workers::alerts::{
    AlertContext, AlertError, Channel, ChannelConfig, EmailConfig, NewChannel, TlsMode, channels,
};
use hangar_workers::signing::WebhookSecret;

use crate::cli::{ChannelCommon, ChannelTarget, ChannelsCommand};
use crate::commands::output::{print_json, short_time};
use crate::commands::table::{Align, Table};
use crate::config::Config;
use crate::exit::Fatal;

fn fatal(error: AlertError) -> Fatal {
    match error {
        AlertError::Invalid(_) => Fatal::config(error.to_string()),
        AlertError::Store(e) => Fatal::from(e),
        other => Fatal::runtime(other.to_string()),
    }
}

/// `hangar alerts channels …`.
pub async fn command(config: &Config, command: ChannelsCommand) -> Result<(), Fatal> {
    match command {
        ChannelsCommand::Add { target } => add(config, target).await,
        ChannelsCommand::List { json } => {
            let store = crate::connect_migrated(config).await?;
            let list = channels::list(&store).await.map_err(fatal)?;
            if json {
                print_json(&list);
            } else {
                print_channels(&list);
            }
            Ok(())
        }
        ChannelsCommand::Remove { id } => {
            let store = crate::connect_migrated(config).await?;
            channels::remove(&store, &id).await.map_err(fatal)?;
            eprintln!("removed {id}");
            Ok(())
        }
        ChannelsCommand::Enable { id } => {
            let store = crate::connect_migrated(config).await?;
            if channels::enable(&store, &id).await.map_err(fatal)? {
                eprintln!("enabled {id}");
            } else {
                eprintln!("{id} was already enabled");
            }
            Ok(())
        }
        ChannelsCommand::Test { id } => {
            let store = crate::connect_migrated(config).await?;
            let (keyring, _) = crate::keys::keyring(config)?;
            let context = AlertContext::new(
                store,
                Arc::new(keyring),
                config.public_url.clone(),
                config.targets.clone(),
            );
            match send_test(&context, &id).await {
                Ok(()) => {
                    println!("delivered");
                    Ok(())
                }
                Err(failure) => Err(Fatal::runtime(format!(
                    "test notice to {id} failed ({}): {}",
                    failure.class, failure.message
                ))),
            }
        }
    }
}

async fn add(config: &Config, target: ChannelTarget) -> Result<(), Fatal> {
    let mut generated = None;
    let (channel_config, common) = match target {
        ChannelTarget::Slack { url, common } => (ChannelConfig::Slack { webhook_url: url }, common),
        ChannelTarget::Webhook {
            url,
            secret,
            common,
        } => {
            let secret = secret.unwrap_or_else(|| {
                let s = WebhookSecret::generate().expose();
                generated = Some(s.clone());
                s
            });
            (ChannelConfig::Webhook { url, secret }, common)
        }
        ChannelTarget::Email {
            smtp_host,
            smtp_port,
            smtp_user,
            smtp_password,
            tls,
            from,
            to,
            common,
        } => {
            let tls = match tls.as_str() {
                "starttls" => TlsMode::Starttls,
                "implicit" => TlsMode::Implicit,
                "none" => TlsMode::None,
                other => {
                    return Err(Fatal::config(format!(
                        "--tls: '{other}' (expected starttls, implicit or none)"
                    )));
                }
            };
            (
                ChannelConfig::Email(EmailConfig {
                    host: smtp_host,
                    port: smtp_port,
                    username: smtp_user,
                    password: smtp_password,
                    from,
                    to,
                    tls,
                }),
                common,
            )
        }
    };
    let ChannelCommon {
        workspace,
        min_severity,
        remind_every_ms,
        json,
    } = common;
    let new = NewChannel {
        workspace_id: workspace,
        config: channel_config,
        min_severity,
        reminder_every_ms: remind_every_ms,
    };
    // Checked before connecting, so bad input never needs a database.
    new.config.validate().map_err(fatal)?;
    let store = crate::connect_migrated(config).await?;
    let (keyring, _) = crate::keys::keyring(config)?;
    let channel = channels::add(&store, &keyring, &new).await.map_err(fatal)?;
    if json {
        let mut value = serde_json::to_value(&channel).unwrap_or_default();
        if let (Some(object), Some(secret)) = (value.as_object_mut(), &generated) {
            object.insert("secret".to_owned(), secret.clone().into());
        }
        print_json(&value);
    } else {
        println!("{}", channel.id);
        if let Some(secret) = generated {
            eprintln!("signing secret (shown once): {secret}");
        }
    }
    Ok(())
}

fn print_channels(list: &[Channel]) {
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("KIND", Align::Left),
        ("WORKSPACE", Align::Left),
        ("MIN", Align::Left),
        ("ENABLED", Align::Left),
        ("CREATED (UTC)", Align::Left),
        ("TARGET", Align::Left),
    ]);
    for c in list {
        table.row(vec![
            c.id.to_string(),
            c.kind.as_str().to_owned(),
            c.workspace_id.clone().unwrap_or_else(|| "*".to_owned()),
            c.min_severity.to_string(),
            if c.enabled { "yes" } else { "no" }.to_owned(),
            short_time(&c.created_at),
            format!(
                "{}{}",
                c.summary,
                c.disabled_reason
                    .as_deref()
                    .map_or(String::new(), |r| format!("  ({r})"))
            ),
        ]);
    }
    table.print();
}
