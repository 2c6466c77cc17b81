//! The dark-mode toggle. The page starts in the saved or system theme (see
//! `THEME_SCRIPT` in the shell); the toggle flips it and remembers the
//! choice. Both icons are rendered and CSS shows the right one, so the
//! server-rendered markup never depends on the browser's theme.

use leptos::prelude::*;

/// Switches between light and dark.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let toggle = move |_| {
        #[cfg(feature = "hydrate")]
        flip_theme();
    };
    view! {
        <button
            type="button"
            on:click=toggle
            class="rounded-md p-2 text-slate-600 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800"
            aria-label="Toggle dark mode"
            title="Toggle dark mode"
            data-testid="theme-toggle"
        >
            <svg class="h-5 w-5 dark:hidden" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">
                <path d="M21 12.8A9 9 0 1 1 11.2 3a7 7 0 0 0 9.8 9.8z" stroke-linejoin="round" />
            </svg>
            <svg class="hidden h-5 w-5 dark:block" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">
                <circle cx="12" cy="12" r="4" />
                <path d="M12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4" stroke-linecap="round" />
            </svg>
        </button>
    }
}

#[cfg(feature = "hydrate")]
fn flip_theme() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Some(root) = window.document().and_then(|d| d.document_element()) else {
        return;
    };
    let dark = !root.class_list().contains("dark");
    let _ = root.class_list().toggle_with_force("dark", dark);
    if let Ok(Some(storage)) = window.local_storage() {
        let _ = storage.set_item("trellis-theme", if dark { "dark" } else { "light" });
    }
}
