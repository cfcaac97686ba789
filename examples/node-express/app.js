'use strict';
// The routes: each tracks an event for the signed-in user and answers at
// once — track() validates on this thread and never waits on the network.
const express = require('express');
const { TrackError } = require('trackcore');

function createApp(tracker) {
  const app = express();
  app.use(express.json());

  // POST /upgrade {"userId": "u-123", "plan": "pro", "seats": 5}
  app.post('/upgrade', (req, res) => {
    const { userId, plan, seats } = req.body ?? {};
    tracker.track('upgraded-plan', { userId, metadata: { plan, seats, annual: false } });
    res.status(202).json({ tracked: 'upgraded-plan' });
  });

  app.get('/stats', (req, res) => res.json(tracker.stats()));

  // Bad input is a typed error naming the field and the rule: a 400 for the client.
  app.use((err, req, res, next) => {
    if (err instanceof TrackError) {
      res.status(400).json({ error: err.code, field: err.field, message: err.message });
    } else {
      next(err);
    }
  });
  return app;
}

module.exports = { createApp };
