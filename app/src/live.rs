//! Live updates in the browser from the server's `/streams/v1` WebSockets.
//!
//! [`subscribe`] keeps one WebSocket open for as long as the component that
//! asked for it, reconnecting after a drop. Each (re)connection asks `path`
//! where to connect, so a log stream resumes from the cursor it reached;
//! `path` returning `None` means "nothing more to follow". On the server
//! (SSR) it does nothing: pages render complete without it.

#[cfg(feature = "hydrate")]
use leptos::prelude::*;

/// Callbacks of a subscription.
pub struct Handlers {
    /// Where to connect now (`/streams/v1/...`), or `None` to stop.
    pub path: Box<dyn Fn() -> Option<String>>,
    /// Each text message.
    pub on_message: Box<dyn Fn(String)>,
    /// Each successful (re)connection: a reader may have missed changes.
    pub on_open: Box<dyn Fn()>,
}

/// Opens the stream after hydration and closes it with the calling
/// component.
pub fn subscribe(handlers: Handlers) {
    #[cfg(feature = "hydrate")]
    {
        let handlers = std::rc::Rc::new(handlers);
        let stopped = std::rc::Rc::new(std::cell::Cell::new(false));
        let current = std::rc::Rc::new(std::cell::RefCell::new(None::<browser::Connection>));
        Effect::new({
            let (handlers, stopped, current) = (handlers.clone(), stopped.clone(), current.clone());
            move |_| browser::connect(handlers.clone(), stopped.clone(), current.clone())
        });
        let guard = send_wrapper::SendWrapper::new((stopped, current));
        on_cleanup(move || {
            let (stopped, current) = guard.take();
            stopped.set(true);
            if let Some(connection) = current.borrow_mut().take() {
                connection.close();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = handlers;
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::time::Duration;

    use leptos::prelude::set_timeout;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::Closure;
    use web_sys::{MessageEvent, WebSocket};

    use super::Handlers;

    /// How long to wait before reconnecting after a drop.
    const RETRY: Duration = Duration::from_millis(1500);

    /// An open socket and the callbacks it holds (dropped with it).
    pub struct Connection {
        socket: WebSocket,
        _on_message: Closure<dyn FnMut(MessageEvent)>,
        _on_open: Closure<dyn FnMut()>,
        _on_close: Closure<dyn FnMut()>,
    }

    impl Connection {
        pub fn close(&self) {
            self.socket.set_onmessage(None);
            self.socket.set_onclose(None);
            let _ = self.socket.close();
        }
    }

    pub fn connect(
        handlers: Rc<Handlers>,
        stopped: Rc<Cell<bool>>,
        current: Rc<RefCell<Option<Connection>>>,
    ) {
        if stopped.get() {
            return;
        }
        let Some(path) = (handlers.path)() else {
            return;
        };
        let Some(location) = web_sys::window().map(|w| w.location()) else {
            return;
        };
        let scheme = match location.protocol().as_deref() {
            Ok("https:") => "wss",
            _ => "ws",
        };
        let Ok(host) = location.host() else { return };
        let Ok(socket) = WebSocket::new(&format!("{scheme}://{host}{path}")) else {
            return;
        };
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
            let handlers = handlers.clone();
            move |event: MessageEvent| {
                if let Some(text) = event.data().as_string() {
                    (handlers.on_message)(text);
                }
            }
        });
        let on_open = Closure::<dyn FnMut()>::new({
            let handlers = handlers.clone();
            move || (handlers.on_open)()
        });
        let on_close = Closure::<dyn FnMut()>::new({
            let (handlers, stopped, current) = (handlers.clone(), stopped.clone(), current.clone());
            move || {
                let (handlers, stopped, current) =
                    (handlers.clone(), stopped.clone(), current.clone());
                // Reconnect later, from wherever `path` says then.
                set_timeout(move || connect(handlers, stopped, current), RETRY);
            }
        });
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        if let Some(previous) = current.borrow_mut().replace(Connection {
            socket,
            _on_message: on_message,
            _on_open: on_open,
            _on_close: on_close,
        }) {
            previous.close();
        }
    }
}
