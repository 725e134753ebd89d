//! The workspace as the server's views hold it, rendered on the server for a first visit, so
//! the lists and todos show before the wasm loads (and without JavaScript).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSummary {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TodoSummary {
    pub id: String,
    pub title: String,
    pub completed: bool,
    pub due_date: Option<String>,
    pub conflicts: u64,
}

/// The default workspace's lists and its first list's todos.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub lists: Vec<ListSummary>,
    pub todos: Vec<TodoSummary>,
    /// The workspace head these views reflect.
    pub head: u64,
}

/// `POST /api/snapshot`: the server's views of the default workspace.
#[server(endpoint = "snapshot")]
pub async fn workspace_snapshot() -> Result<Snapshot, ServerFnError> {
    use tandem_events::ids::WorkspaceId;
    let service = use_context::<crate::sync::ssr::SyncService>()
        .ok_or_else(|| ServerFnError::new("the sync service is not running"))?;
    tokio::task::spawn_blocking(move || {
        let server_views = service.views().map_err(|e| ServerFnError::new(e.message))?;
        let ws = WorkspaceId::DEFAULT;
        let views = server_views.views();
        let lists = views
            .lists(ws)
            .map_err(|e| ServerFnError::new(e.to_string()))?;
        let todos = match lists.first() {
            Some(first) => views
                .todos(first.id)
                .map_err(|e| ServerFnError::new(e.to_string()))?,
            None => vec![],
        };
        let head = views
            .checkpoint(ws)
            .map_err(|e| ServerFnError::new(e.to_string()))?;
        Ok(Snapshot {
            lists: lists
                .into_iter()
                .map(|l| ListSummary {
                    id: l.id.to_string(),
                    name: l.name,
                })
                .collect(),
            todos: todos
                .into_iter()
                .map(|t| TodoSummary {
                    id: t.id.to_string(),
                    title: t.title,
                    completed: t.completed,
                    due_date: t.due_date,
                    conflicts: t.conflicts,
                })
                .collect(),
            head,
        })
    })
    .await
    .map_err(|e| ServerFnError::new(format!("the snapshot task failed: {e}")))?
}

/// The first list and its todos, read-only until the list pane arrives.
#[component]
pub fn WorkspaceView() -> impl IntoView {
    let snapshot = Resource::new(|| (), |_| workspace_snapshot());
    view! {
        <Suspense fallback=|| view! { <p class="todo-empty">"Loading…"</p> }>
            {move || {
                snapshot
                    .get()
                    .map(|result| match result {
                        Ok(snapshot) => render(snapshot).into_any(),
                        Err(e) => {
                            view! { <p class="todo-error">{format!("Cannot load the to-dos: {e}")}</p> }
                                .into_any()
                        }
                    })
            }}
        </Suspense>
    }
}

fn render(snapshot: Snapshot) -> impl IntoView {
    let heading = snapshot
        .lists
        .first()
        .map(|l| l.name.clone())
        .unwrap_or_default();
    let empty = snapshot.todos.is_empty();
    view! {
        <nav class="lists" aria-label="Lists">
            <ul>
                {snapshot
                    .lists
                    .into_iter()
                    .map(|l| view! { <li data-list-id=l.id>{l.name}</li> })
                    .collect_view()}
            </ul>
        </nav>
        <h2 class="list-name">{heading}</h2>
        {if empty {
            view! { <p class="todo-empty">"Nothing to do yet."</p> }.into_any()
        } else {
            view! {
                <ul class="todo-list">
                    {snapshot
                        .todos
                        .into_iter()
                        .map(|t| {
                            view! {
                                <li class:completed=t.completed data-todo-id=t.id>
                                    <label>{t.title}</label>
                                    {t.due_date.map(|d| view! { <time class="due">{d}</time> })}
                                    {(t.conflicts > 0)
                                        .then(|| {
                                            view! {
                                                <span class="conflict-badge">
                                                    {format!("{} conflicting edit(s)", t.conflicts)}
                                                </span>
                                            }
                                        })}
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            }
                .into_any()
        }}
    }
}
