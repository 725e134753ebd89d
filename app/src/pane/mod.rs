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
use tandem_protocol::data::Reply;

/// Whether a command was refused or failed (nothing was recorded).
fn failed(reply: &Reply) -> bool {
    matches!(reply, Reply::Refused { .. } | Reply::Failed { .. })
}

/// Shows a refusal or failure inline; a success clears the message.
fn report(error: RwSignal<Option<String>>, reply: Reply) {
    match reply {
        Reply::Refused { reason } | Reply::Failed { reason } => error.set(Some(reason)),
        _ => error.set(None),
    }
}
