use super::*;

struct Fixture {
    cooc_idx: Vec<i32>,
    cooc_sim: Vec<f32>,
    fbt_idx: Vec<i32>,
    fbt_score: Vec<f32>,
    content_idx: Vec<i32>,
    content_sim: Vec<f32>,
    popularity: Vec<f32>,
    trending: Vec<f32>,
    seasonal: Vec<f32>,
    cycle: Vec<f32>,
    repurchase: Vec<f32>,
    taste: Vec<f32>,
}

/// Five items; item 0 co-purchased with 1, bought together with 2, similar to 3.
fn fixture() -> Fixture {
    let n = 5;
    let mut cooc_idx = vec![-1; n * 2];
    let mut cooc_sim = vec![0.0; n * 2];
    cooc_idx[0] = 1;
    cooc_sim[0] = 0.8;
    let mut fbt_idx = vec![-1; n * 2];
    let mut fbt_score = vec![0.0; n * 2];
    fbt_idx[0] = 2;
    fbt_score[0] = 3.0;
    let mut content_idx = vec![-1; n * 2];
    let mut content_sim = vec![0.0; n * 2];
    content_idx[0] = 3;
    content_sim[0] = 0.9;
    Fixture {
        cooc_idx,
        cooc_sim,
        fbt_idx,
        fbt_score,
        content_idx,
        content_sim,
        popularity: vec![0.1, 0.2, 0.3, 0.4, 1.0],
        trending: vec![0.0; n],
        seasonal: vec![1.0; n],
        cycle: vec![7.0; n],
        repurchase: vec![0.5; n],
        // One taste dimension: items 0, 1 and 4 on one side, 2 and 3 on the other.
        taste: vec![0.5, 0.5, -0.5, -0.5, 0.2],
    }
}

fn tables(f: &Fixture) -> ItemTables<'_> {
    ItemTables {
        n_items: 5,
        cooc: Neighbours { idx: &f.cooc_idx, score: &f.cooc_sim, k: 2 },
        fbt: Neighbours { idx: &f.fbt_idx, score: &f.fbt_score, k: 2 },
        content: Neighbours { idx: &f.content_idx, score: &f.content_sim, k: 2 },
        popularity: &f.popularity,
        trending: &f.trending,
        seasonal_lift: &f.seasonal,
        weeks: 1,
        population_cycle_days: &f.cycle,
        repurchase_rate: &f.repurchase,
        taste_factors: &f.taste,
        taste_dims: 1,
    }
}

const ALL_ON: [f32; N_SIGNALS] = [1.0; N_SIGNALS];

fn request<'a>(history: History<'a>, basket: &'a [i32], allowed: &'a [bool], weights: &'a [f32]) -> Request<'a> {
    const CATEGORY: [i32; 5] = [0, 1, 2, 3, 4];
    const BRAND: [i32; 5] = [-1; 5];
    const EXTRA: [i32; 1] = [4];
    Request {
        history,
        basket,
        allowed,
        category: &CATEGORY,
        brand: &BRAND,
        extra_candidates: &EXTRA,
        like_you_items: &[],
        like_you_scores: &[],
        weights,
        week: 0,
        k: 10,
        exclude_history: false,
        per_category_cap: 0,
        neighbours_per_item: 10,
        replaced_weight: 1.0,
        popularity_discount: 0.0,
        reranker: None,
        with_features: false,
    }
}

const NO_HISTORY: History<'static> =
    History { items: &[], days_since_last: &[], mean_gap_days: &[], orders: &[], habit: &[], days_to_next_trip: 0.0 };

#[test]
fn candidate_signals_rank_as_rank_does_under_any_weights() {
    let f = fixture();
    let allowed = [true, true, true, false, true];
    let history = History {
        items: &[0, 2],
        days_since_last: &[6.0, 20.0],
        mean_gap_days: &[7.0, f32::NAN],
        orders: &[4.0, 1.0],
        habit: &[0.8, 0.3],
        days_to_next_trip: 2.0,
    };
    let aisles = [0, 0, 1, 1, 0];
    let mut weights = [0.0f32; N_SIGNALS];
    for (round, cap) in [(0u32, 0usize), (1, 1), (2, 2), (3, 1), (4, 0)] {
        // A different blend each round, the taste weight 0 in some (then `rank` skips taste).
        for (k, w) in weights.iter_mut().enumerate() {
            *w = ((k as u32 * 7 + round * 3) % 5) as f32 * 0.25;
        }
        for exclude_history in [false, true] {
            let mut req = request(history, &[4], &allowed, &weights);
            req.category = &aisles;
            req.per_category_cap = cap;
            req.exclude_history = exclude_history;
            req.k = 3;
            let t = tables(&f);
            let candidates = candidate_signals(&t, &req).unwrap();
            let ranked = rank(&t, &req).unwrap();
            assert_eq!(rank_candidates(&candidates, &weights, 3, cap).unwrap(), ranked.items, "round {round}");
        }
    }
    let candidates = candidate_signals(&tables(&f), &request(history, &[], &allowed, &ALL_ON)).unwrap();
    assert!(rank_candidates(&candidates, &[1.0; 3], 3, 0).is_err());
    assert!(rank_candidates(&candidates, &[-1.0; N_SIGNALS], 3, 0).is_err());
}

#[test]
fn affinity_by_index_or_by_search_reads_the_merged_shares() {
    let habit = [0.5, 0.25, 0.125, 0.125];
    let history = History {
        items: &[0, 1, 2, 3],
        days_since_last: &[1.0; 4],
        mean_gap_days: &[7.0; 4],
        orders: &[2.0; 4],
        habit: &habit,
        days_to_next_trip: 1.0,
    };
    // Items 0 and 2 share key 7; item 3 has none. Small keys go dense, a large one searched.
    for large in [9, DENSE_KEYS as i32 + 5] {
        let keys = [7, large, 7, -1];
        let affinity = Affinity::of(&history, &keys);
        assert_eq!(matches!(affinity, Affinity::Dense(_)), large < DENSE_KEYS as i32);
        assert_eq!(affinity.at(7), 0.625);
        assert_eq!(affinity.at(large), 0.25);
        for other in [-1, 0, 6, 8, large + 1] {
            assert_eq!(affinity.at(other), 0.0, "key {other}");
        }
    }
}

#[test]
fn dueness_peaks_on_the_expected_day() {
    assert!(dueness(6.5, 7.0) > 0.99);
    assert!(dueness(0.0, 7.0) < dueness(3.0, 7.0));
    assert!(dueness(30.0, 7.0) < dueness(10.0, 7.0));
    assert_eq!(dueness(3.0, f32::NAN), 0.0);
}

#[test]
fn own_cycle_is_shrunk_towards_the_population() {
    assert_eq!(expected_cycle(f32::NAN, 1.0, 10.0), 10.0);
    let shrunk = expected_cycle(4.0, 3.0, 10.0); // two gaps of 4 days against a prior of 10
    assert!((shrunk - 7.0).abs() < 1e-6);
    assert!(expected_cycle(f32::NAN, 1.0, f32::NAN).is_nan());
}

#[test]
fn basket_items_are_never_returned_and_lead_to_their_neighbours() {
    let f = fixture();
    let allowed = [true; 5];
    let ranked = rank(&tables(&f), &request(NO_HISTORY, &[0], &allowed, &ALL_ON)).unwrap();
    assert!(!ranked.items.contains(&0));
    let pos = ranked.items.iter().position(|i| *i == 2).unwrap();
    assert_eq!(ranked.reasons[pos * REASONS_PER_ITEM], BASKET_COMPLEMENT as i8);
    assert_eq!(ranked.anchors[pos * REASONS_PER_ITEM], 0);
}

#[test]
fn filtered_and_history_items_are_dropped_when_asked() {
    let f = fixture();
    let allowed = [true, false, true, true, true];
    let history = History {
        items: &[0, 3],
        days_since_last: &[7.0, 2.0],
        mean_gap_days: &[7.0, f32::NAN],
        orders: &[4.0, 1.0],
        habit: &[0.8, 0.2],
        days_to_next_trip: 0.0,
    };
    let mut req = request(history, &[], &allowed, &ALL_ON);
    let ranked = rank(&tables(&f), &req).unwrap();
    assert!(!ranked.items.contains(&1));
    assert_eq!(ranked.items[0], 0, "a due staple comes first");
    req.exclude_history = true;
    let discover = rank(&tables(&f), &req).unwrap();
    assert!(!discover.items.contains(&0) && !discover.items.contains(&3));
}

#[test]
fn per_category_cap_and_k_hold() {
    let f = fixture();
    let allowed = [true; 5];
    let category = [7, 7, 7, 8, 8];
    let mut req = request(NO_HISTORY, &[], &allowed, &ALL_ON);
    let extra = [0, 1, 2, 3, 4];
    req.extra_candidates = &extra;
    req.category = &category;
    req.per_category_cap = 1;
    req.k = 2;
    assert_eq!(rank(&tables(&f), &req).unwrap().items, vec![4, 2], "one per aisle while the aisles last");
    req.per_category_cap = 0;
    req.k = 3;
    assert_eq!(rank(&tables(&f), &req).unwrap().items, vec![4, 3, 2]);
}

#[test]
fn a_capped_list_is_filled_when_the_aisles_run_out() {
    let f = fixture();
    let allowed = [true; 5];
    let one_aisle = [7; 5];
    let mut req = request(NO_HISTORY, &[], &allowed, &ALL_ON);
    let extra = [0, 1, 2, 3, 4];
    req.extra_candidates = &extra;
    req.category = &one_aisle;
    req.per_category_cap = 2;
    let capped = rank(&tables(&f), &req).unwrap();
    req.per_category_cap = 0;
    let uncapped = rank(&tables(&f), &req).unwrap();
    assert_eq!(capped.items.len(), 5, "every eligible product, as with no cap");
    assert_eq!(capped.items, uncapped.items, "one aisle: the cap cannot change the order");

    let two_aisles = [7, 7, 7, 7, 8];
    req.category = &two_aisles;
    req.per_category_cap = 1;
    req.k = 4;
    let ranked = rank(&tables(&f), &req).unwrap();
    assert_eq!(ranked.items.len(), 4);
    assert_eq!(&ranked.items[..2], &[4, 3], "the cap still decides the head of the list");
}

fn only(signal: usize) -> [f32; N_SIGNALS] {
    let mut weights = [0.0; N_SIGNALS];
    weights[signal] = 1.0;
    weights
}

#[test]
fn neighbour_evidence_is_scaled_by_the_strongest_shown() {
    let f = fixture();
    let allowed = [true; 5];
    let history = History {
        items: &[0],
        days_since_last: &[3.0],
        mean_gap_days: &[f32::NAN],
        orders: &[1.0],
        habit: &[0.5],
        days_to_next_trip: 0.0,
    };
    let weights = only(CO_PURCHASE);
    let ranked = rank(&tables(&f), &request(history, &[], &allowed, &weights)).unwrap();
    // Cosine 0.8 from item 0 is the strongest co-purchase evidence: it scales to 1.
    assert_eq!(ranked.items, vec![1]);
    assert!((ranked.scores[0] - 1.0).abs() < 1e-6);
}

#[test]
fn taste_finds_what_households_like_this_one_buy() {
    let f = fixture();
    let allowed = [true; 5];
    let history = History {
        items: &[0],
        days_since_last: &[3.0],
        mean_gap_days: &[f32::NAN],
        orders: &[1.0],
        habit: &[0.5],
        days_to_next_trip: 0.0,
    };
    let weights = only(TASTE);
    let mut req = request(history, &[], &allowed, &weights);
    req.exclude_history = true;
    let ranked = rank(&tables(&f), &req).unwrap();
    // Items 1 and 4 lie on the shopper's side of taste space (dots 0.25 and 0.1); 2 and 3
    // on the other side score nothing.
    assert_eq!(ranked.items, vec![1, 4]);
    assert!((ranked.scores[0] - 1.0).abs() < 1e-6 && (ranked.scores[1] - 0.4).abs() < 1e-6);
    assert_eq!(ranked.reasons[0], TASTE as i8);
    assert_eq!(ranked.anchors[0], -1);
}

#[test]
fn due_by_next_trip_looks_ahead_to_the_expected_trip() {
    let f = fixture();
    let allowed = [true; 5];
    // Bought half a day ago on a 7-day cycle: hardly due now, due at a trip 6 days away.
    let mut history = History {
        items: &[0],
        days_since_last: &[0.5],
        mean_gap_days: &[7.0],
        orders: &[5.0],
        habit: &[1.0],
        days_to_next_trip: 0.0,
    };
    let weights = only(DUE_BY_NEXT_TRIP);
    let now = rank(&tables(&f), &request(history, &[], &allowed, &weights)).unwrap();
    history.days_to_next_trip = 6.0;
    let ahead = rank(&tables(&f), &request(history, &[], &allowed, &weights)).unwrap();
    assert!(now.scores[0] < 0.05, "{:?}", now.scores);
    assert!(ahead.scores[0] > 0.99, "{:?}", ahead.scores);
    let replenishment = rank(&tables(&f), &request(history, &[], &allowed, &only(REPLENISHMENT))).unwrap();
    assert_eq!(replenishment.scores, now.scores, "replenishment stays as of the request");
}

#[test]
fn a_product_replaced_in_its_aisle_counts_for_less() {
    let f = fixture();
    let allowed = [true; 5];
    // Aisles: items 0 and 1 share aisle 7. Item 0 was bought on 5 trips, the last 30 days
    // ago; item 1, first bought 20 days ago (10 + 5 x 2) and on 3 trips since, replaced it.
    // Item 2 (alone in its aisle) and item 1 itself are not replaced.
    let category = [7, 7, 8, 3, 4];
    let history = History {
        items: &[0, 1, 2],
        days_since_last: &[30.0, 10.0, 30.0],
        mean_gap_days: &[7.0, 5.0, 7.0],
        orders: &[5.0, 3.0, 5.0],
        habit: &[0.5, 0.5, 0.5],
        days_to_next_trip: 0.0,
    };
    let weights = only(HABIT);
    let mut req = request(history, &[], &allowed, &weights);
    req.category = &category;
    let score_of = |req: &Request, item: i32| {
        let ranked = rank(&tables(&f), req).unwrap();
        ranked.scores[ranked.items.iter().position(|i| *i == item).unwrap()]
    };
    assert_eq!(score_of(&req, 0), score_of(&req, 2), "weight 1: no effect");
    req.replaced_weight = 0.5;
    assert!((score_of(&req, 0) - 0.5 * score_of(&req, 2)).abs() < 1e-6);
    assert_eq!(score_of(&req, 1), score_of(&req, 2));
    req.replaced_weight = 0.0;
    assert!(!rank(&tables(&f), &req).unwrap().items.contains(&0), "nothing left to score it");
    // A one-trip product does not replace anything (a whim, not a switch).
    let one_trip = History { orders: &[5.0, 1.0, 5.0], mean_gap_days: &[7.0, f32::NAN, 7.0], ..history };
    let mut req = request(one_trip, &[], &allowed, &weights);
    req.category = &category;
    req.replaced_weight = 0.0;
    assert_eq!(score_of(&req, 0), score_of(&req, 2));
    req.replaced_weight = 1.5;
    assert!(rank(&tables(&f), &req).is_err());
}

#[test]
fn a_popularity_discount_lowers_best_sellers_most() {
    let f = fixture();
    let allowed = [true; 5];
    let weights = only(POPULARITY);
    let mut req = request(NO_HISTORY, &[], &allowed, &weights);
    req.extra_candidates = &[0, 1, 2, 3, 4];
    let plain = rank(&tables(&f), &req).unwrap();
    req.popularity_discount = 0.5;
    let discounted = rank(&tables(&f), &req).unwrap();
    for (item, score) in plain.items.iter().zip(&plain.scores) {
        let p = f.popularity[*item as usize].clamp(0.0, 1.0);
        let pos = discounted.items.iter().position(|i| i == item).unwrap();
        assert!((discounted.scores[pos] - score * (1.0 - 0.5 * p)).abs() < 1e-6);
    }
    req.popularity_discount = 1.5;
    assert!(rank(&tables(&f), &req).is_err());
}

#[test]
fn a_reranker_orders_the_head_and_keeps_scores_falling() {
    let f = fixture();
    let allowed = [true; 5];
    let weights = only(POPULARITY);
    let mut req = request(NO_HISTORY, &[], &allowed, &weights);
    req.extra_candidates = &[0, 1, 2, 3, 4];
    req.with_features = true;
    let plain = rank(&tables(&f), &req).unwrap();
    assert_eq!(plain.items, [4, 3, 2, 1, 0]);
    assert_eq!(plain.features.len(), 5 * N_FEATURES);
    assert_eq!(plain.features[POPULARITY], 1.0, "item 4's popularity, unweighted");
    assert_eq!(plain.features[IN_HISTORY], 0.0);
    assert_eq!(plain.features[DUE_RATIO], -1.0, "not in the history");
    // One stump: the least popular products (popularity <= 0.25) first.
    let forest = Forest {
        n_features: N_FEATURES,
        base: vec![],
        feature: vec![POPULARITY as i32, -1, -1],
        threshold: vec![0.25, 0.0, 0.0],
        left: vec![1, -1, -1],
        right: vec![2, -1, -1],
        value: vec![0.0, 1.0, 0.0],
        roots: vec![0],
    };
    req.reranker = Some(&forest);
    let reranked = rank(&tables(&f), &req).unwrap();
    assert_eq!(reranked.items, [1, 0, 4, 3, 2], "ties keep the blend's order");
    assert_eq!(reranked.scores, plain.scores, "the head's scores stay in place");
    let wrong = Forest { n_features: 3, ..forest.clone() };
    req.reranker = Some(&wrong);
    assert!(rank(&tables(&f), &req).is_err());
}

#[test]
fn shoppers_like_you_bring_their_products() {
    let f = fixture();
    let allowed = [true; 5];
    let weights = only(SHOPPERS_LIKE_YOU);
    let mut req = request(NO_HISTORY, &[], &allowed, &weights);
    req.extra_candidates = &[];
    req.like_you_items = &[3, 2];
    req.like_you_scores = &[0.6, 0.3];
    let ranked = rank(&tables(&f), &req).unwrap();
    assert_eq!(ranked.items, vec![3, 2], "candidates from the row alone, scaled by the strongest");
    assert!((ranked.scores[0] - 1.0).abs() < 1e-6 && (ranked.scores[1] - 0.5).abs() < 1e-6);
    assert_eq!(ranked.reasons[0], SHOPPERS_LIKE_YOU as i8);
}

#[test]
fn bad_input_is_rejected() {
    let f = fixture();
    let allowed = [true; 5];
    assert!(rank(&tables(&f), &request(NO_HISTORY, &[9], &allowed, &ALL_ON)).is_err());
    assert!(rank(&tables(&f), &request(NO_HISTORY, &[], &allowed[..4], &ALL_ON)).is_err());
    assert!(rank(&tables(&f), &request(NO_HISTORY, &[], &allowed, &ALL_ON[..3])).is_err());
    let mut req = request(NO_HISTORY, &[], &allowed, &ALL_ON);
    req.like_you_items = &[1, 2];
    req.like_you_scores = &[0.5];
    assert!(rank(&tables(&f), &req).is_err());
    req.like_you_items = &[7];
    req.like_you_scores = &[0.5];
    assert!(rank(&tables(&f), &req).is_err());
    let mut late = NO_HISTORY;
    late.days_to_next_trip = -1.0;
    assert!(rank(&tables(&f), &request(late, &[], &allowed, &ALL_ON)).is_err());
    let mut t = tables(&f);
    t.taste_dims = 2;
    assert!(validate_tables(&t).is_err());
}
