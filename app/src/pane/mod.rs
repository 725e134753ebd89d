//! The list page: the sidebar of lists, the to-do pane (TodoMVC's markup and behaviour,
//! CONTRACT.md "The page"), the sync status and the banners. Every write goes to the worker as
//! a command and shows once its reply says it is committed (DESIGN.md rule 16): the rows come
//! back in the change set that precedes the reply.
//!
//! One module per part: `route` (the route and its layout), `sidebar` (the lists), `list` (the
//! TodoMVC pane and its new-todo box), `item` (a to-do's row, its details and due date),
//! `status` (the sync status and the banners), `shortcuts` (the keyboard help).

mod item;
mod list;
mod route;
mod shortcuts;
mod sidebar;
mod status;

pub use route::ListRoute;
pub use shortcuts::Shortcuts;
pub use status::{Banner, SyncStatusBar};

use leptos::prelude::*;
use leptos::task::spawn_local;
use tandem_protocol::data::Command;

use crate::local::{AskError, Local};

/// Shows a refusal or failure inline; a success clears the message.
fn report<T>(error: RwSignal<Option<String>>, result: &Result<T, AskError>) {
    error.set(result.as_ref().err().map(ToString::to_string));
}

/// Runs a command, showing its refusal or failure inline (a success clears the message).
fn run_reporting(local: Local, error: RwSignal<Option<String>>, command: Command) {
    spawn_local(async move { report(error, &local.run(command).await) });
}
