//! Ember's own gRPC service for the CLI (beside Ballista's, on its own port:
//! Ballista's router takes no extra services).

use std::sync::Arc;

use ember_proto::ember_service_server::EmberService;
use ember_proto::{
    ExecutorList, JobDetail, JobList, JobRef, JobSummary, ListRequest, SubmitJobReply,
    SubmitJobRequest,
};
use tonic::{Request, Response, Status};

use crate::manager::Manager;

pub struct Service {
    pub manager: Arc<Manager>,
    pub ballista_http: String,
    pub executor_timeout_secs: u64,
}

#[tonic::async_trait]
impl EmberService for Service {
    async fn submit_job(
        &self,
        req: Request<SubmitJobRequest>,
    ) -> Result<Response<SubmitJobReply>, Status> {
        let r = req.into_inner();
        match self.manager.submit(&r.spec_toml, r.reset).await {
            Ok((action, job)) => Ok(Response::new(SubmitJobReply {
                name: job.name.clone(),
                action: action.as_str().into(),
                job: Some(job),
            })),
            Err(e) => Err(Status::invalid_argument(e)),
        }
    }

    async fn list_jobs(&self, _req: Request<ListRequest>) -> Result<Response<JobList>, Status> {
        Ok(Response::new(JobList {
            jobs: self.manager.jobs().iter().map(|j| j.summary()).collect(),
        }))
    }

    async fn get_job(&self, req: Request<JobRef>) -> Result<Response<JobDetail>, Status> {
        let name = req.into_inner().name;
        let job = self
            .manager
            .job(&name)
            .ok_or_else(|| Status::not_found(format!("no job named {name}")))?;
        let dead = self.manager.dead_letters(&job, 20).await;
        Ok(Response::new(job.detail(dead)))
    }

    async fn stop_job(&self, req: Request<JobRef>) -> Result<Response<JobSummary>, Status> {
        let name = req.into_inner().name;
        self.manager
            .stop(&name)
            .await
            .map(Response::new)
            .map_err(Status::not_found)
    }

    async fn list_executors(
        &self,
        _req: Request<ListRequest>,
    ) -> Result<Response<ExecutorList>, Status> {
        crate::executors::list(&self.ballista_http, self.executor_timeout_secs)
            .await
            .map(|executors| Response::new(ExecutorList { executors }))
            .map_err(Status::unavailable)
    }
}
