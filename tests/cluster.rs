//! Several nodes behind HAProxy (scripts/cluster.sh, deploy/haproxy.cfg): every request
//! about a room reaches the same node, whichever path it takes, and the rooms spread over
//! all the nodes.

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster_process::{balancer_client, Cluster};

const NODES: usize = 3;
const ROOMS: usize = 30;
/// REST reads of each room, all of which must reach one node.
const READS: usize = 4;

/// `X-Served-By` of an answer.
fn served_by(headers: &awc::http::header::HeaderMap) -> String {
    headers
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .expect("X-Served-By on every answer")
        .to_owned()
}

#[actix_rt::test]
async fn the_cluster_routes_each_room_to_one_node() {
    let cluster = Cluster::up(NODES);
    // One client with its keep-alive pool, like a browser: HAProxy routes each request on a
    // connection by itself, not the connection as a whole.
    let client = balancer_client();

    let mut health = client
        .get(format!("{}/api/health", cluster.url))
        .send()
        .await
        .expect("GET /api/health through the balancer");
    assert_eq!(health.status().as_u16(), 200);
    let body: serde_json::Value = health.json().await.expect("health JSON");
    assert_eq!(body["status"], "ok", "{body}");

    // Creating a room names none, so creation goes round robin: each node creates a third.
    let mut rooms = Vec::new();
    let mut created_by: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..ROOMS {
        let mut resp = client
            .post(format!("{}/api/rooms", cluster.url))
            .send_json(&serde_json::json!({ "name": format!("room {i}") }))
            .await
            .expect("POST /api/rooms through the balancer");
        assert_eq!(resp.status().as_u16(), 201);
        *created_by.entry(served_by(resp.headers())).or_default() += 1;
        let v: serde_json::Value = resp.json().await.expect("JSON");
        rooms.push(v["room_id"].as_str().expect("room_id").to_owned());
    }
    let even: BTreeMap<String, usize> = cluster
        .nodes
        .iter()
        .map(|n| (n.id.clone(), ROOMS / NODES))
        .collect();
    assert_eq!(created_by, even, "rooms created round robin");

    // Each room: its REST reads, its page and its WebSocket all reach one node. The room was
    // created on any node and is loaded from Redis by the node its id hashes to.
    let mut home: BTreeMap<String, String> = BTreeMap::new();
    for room in &rooms {
        let mut seen = BTreeSet::new();
        for _ in 0..READS {
            let resp = client
                .get(format!("{}/api/rooms/{room}", cluster.url))
                .send()
                .await
                .expect("GET /api/rooms/{id} through the balancer");
            assert_eq!(resp.status().as_u16(), 200, "room {room}");
            seen.insert(served_by(resp.headers()));
        }
        let page = client
            .get(format!("{}/r/{room}", cluster.url))
            .send()
            .await
            .expect("GET /r/{id} through the balancer");
        assert_eq!(page.status().as_u16(), 200);
        seen.insert(served_by(page.headers()));
        let (upgrade, socket) = client
            .ws(format!(
                "{}/api/rooms/{room}/ws",
                cluster.url.replacen("http", "ws", 1)
            ))
            .connect()
            .await
            .expect("WebSocket through the balancer");
        seen.insert(served_by(upgrade.headers()));
        drop(socket);
        assert_eq!(seen.len(), 1, "room {room} was served by {seen:?}");
        home.insert(room.clone(), seen.into_iter().next().expect("one node"));
    }

    // With 30 rooms and shares within a few percent of a third, a node left without a room
    // would be a 1-in-50,000 event: it means the hash is not spreading.
    let used: BTreeSet<&String> = home.values().collect();
    let all: BTreeSet<&String> = cluster.nodes.iter().map(|n| &n.id).collect();
    assert_eq!(used, all, "rooms per node: {home:?}");

    // The routing above is only stable if no node left the ring meanwhile; a check that
    // timed out on a busy machine would have moved rooms, and should be reported as such.
    for view in cluster.haproxy_view() {
        assert_eq!(
            (view.status.as_str(), view.times_down),
            ("UP", 0),
            "HAProxy took {} out during the test: {view:?}\n{}",
            view.id,
            cluster.log("haproxy")
        );
    }
    cluster.down();
}
